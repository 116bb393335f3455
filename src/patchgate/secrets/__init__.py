"""Where credentials come from (env, Vault, the twin) and how their values are kept out of output.

``build_secrets(lab.secrets, lab)`` returns a :class:`~patchgate.secrets.base.SecretsProvider`.
"""

from patchgate.secrets.base import Credentials, SecretsProvider
from patchgate.secrets.factory import build_secrets
from patchgate.secrets.redact import install_logging_redaction, redact_file, redact_tree, redactor, safe_str

__all__ = ["Credentials", "SecretsProvider", "build_secrets", "install_logging_redaction", "redact_file",
           "redact_tree", "redactor", "safe_str"]
