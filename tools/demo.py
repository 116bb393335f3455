"""`make demo`: validate KB5070881 and KB5070893 on the twin lab and show the verdicts side by side.

Exits 0 when both verdicts are what Microsoft's documentation implies (KB5070881 blocked: it takes enrolled machines
off the hotpatch track; KB5070893 approved), so the demo itself is a check.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))
EXPECTED = {"KB5070881": "block", "KB5070893": "approve"}


def main() -> int:
    rows = []
    for kb, expected in EXPECTED.items():
        out = ROOT / "reports" / f"demo-{kb}"
        shutil.rmtree(out, ignore_errors=True)  # the demo's own folder: a run only writes into a new one
        began = time.monotonic()
        code = subprocess.call([PATCHGATE, "validate", "--lab", "twin", "--candidate", kb, "--out", str(out),
                                "--", "-q", "--no-header", "-rN"], cwd=ROOT)
        took = time.monotonic() - began
        gate_file = out / "gate.json"
        verdict = json.loads(gate_file.read_text())["verdict"] if gate_file.is_file() else "none"
        rows.append((kb, verdict, code, expected, took, out))
        if (ROOT / "node_modules" / ".bin" / "allure").exists():
            subprocess.call([PATCHGATE, "report", str(out)], cwd=ROOT)
    print("\n" + "=" * 78)
    print(f"{'candidate':<11} {'verdict':<13} {'exit':>4}  {'expected':<9} {'time':>6}  output")
    ok = True
    for kb, verdict, code, expected, took, out in rows:
        ok &= verdict == expected
        print(f"{kb:<11} {verdict.upper():<13} {code:>4}  {expected:<9} {took:5.1f}s  {out.relative_to(ROOT)}")
    print("=" * 78)
    print("demo verdicts match Microsoft's documentation" if ok else "demo verdicts DIFFER from the expected ones")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
