"""``patchgate doctor`` and the preflight of every run: what a VM must be before patchgate trusts its verdicts.

``checks`` judges what a VM answered (pure functions), ``facts`` runs and reads the preflight script,
``command`` drives ``patchgate doctor`` over a lab. docs/doctor.md lists every check and its advice.
"""
