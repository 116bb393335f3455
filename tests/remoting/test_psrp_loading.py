"""pypsrp is loaded in the background once a run's VMs are in the lab (``prepare``), not when the remoting is
built: the leases and the first reverts, which come in between, do not share the interpreter with the load."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_pypsrp_loads_on_prepare_not_on_construction() -> None:
    code = textwrap.dedent("""
        import sys, threading
        from patchgate.remoting.psrp_remoting import PsrpRemoting
        remoting = PsrpRemoting()
        loading = [t.name for t in threading.enumerate() if "pypsrp" in t.name]
        assert not loading and "pypsrp" not in sys.modules, ("loading when the remoting was built", loading)
        remoting.prepare()
        remoting.prepare()  # once: a second call starts no second load
        remoting._loading.join(timeout=60)
        assert "pypsrp.client" in sys.modules or "pypsrp.powershell" in sys.modules, sorted(sys.modules)[:20]
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
