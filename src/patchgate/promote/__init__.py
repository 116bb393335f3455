"""``patchgate promote``: an approved run's KB, approved ring by ring on production WSUS (docs/rings.md)."""
