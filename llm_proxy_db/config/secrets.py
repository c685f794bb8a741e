"""Variables that carry a secret, read from the environment or from a file (``<NAME>_FILE``).

Kubernetes and Docker hand secrets to a container as files (a Secret volume, ``/run/secrets``);
putting a password in an environment variable leaks it into ``ps e``, crash reports and pod
specs.  So every variable that takes a secret also reads ``<NAME>_FILE``: the file's content,
trailing line breaks removed, is the value.

* Both ``NAME`` and ``NAME_FILE`` set: refused (exit 2) rather than one silently winning.
* A file that cannot be read, is not UTF-8, or is empty: refused (exit 2); the message names
  the variable and the path, never the content.
* A file anyone may write (mode ``o+w``): refused (exit 2), since whoever rewrites it chooses
  which database gets migrated.  A world-readable file is accepted without a warning:
  Kubernetes mounts Secret files 0644 and Docker 0444 by default, inside a container whose
  only user is the tool; a warning there would fire on every correct deployment
  (docs/deployment.md says how to mount them 0400).

Registering a variable is one line in :data:`SECRET_VARIABLES`.  This module imports nothing
heavy: the fast startup path reads ``DATABASE_URL`` through it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from llm_proxy_db.errors import ConfigError

FILE_SUFFIX = "_FILE"
# Every variable that takes a secret; each one also reads <NAME>_FILE.
SECRET_VARIABLES: tuple[str, ...] = (
    "DATABASE_URL",
    "LLM_PROXY_DIRECT_URL",
)


def secret_env(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of the secret variable ``name``: ``env[name]``, or the content of the file
    ``env[name + "_FILE"]`` names; None when neither is set (an empty value counts as unset)."""
    if name not in SECRET_VARIABLES:
        raise KeyError(f"{name} is not registered in SECRET_VARIABLES")
    env = os.environ if env is None else env
    value, path = env.get(name) or None, env.get(name + FILE_SUFFIX) or None
    if value is not None and path is not None:
        raise ConfigError(
            f"both {name} and {name}{FILE_SUFFIX} are set",
            hint=f"set only one of them ({name}{FILE_SUFFIX} for a mounted secret)",
        )
    return value if path is None else read_secret_file(name + FILE_SUFFIX, path)


def read_secret_file(variable: str, path: str) -> str:
    """The secret in the file ``path`` (named by ``variable``), trailing line breaks removed."""
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {variable} {path!r}: {exc.strerror or type(exc).__name__}",
            hint="mount the secret at that path and make it readable by this user",
        ) from None
    if mode & stat.S_IWOTH:
        raise ConfigError(
            f"{variable} {path!r} is writable by every user",
            hint=f"chmod o-w {path} (a secret file should be 0400 or 0440)",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{variable} {path!r} is not UTF-8 text", hint="write the value as plain text") from None
    value = text.rstrip("\r\n")  # the line break(s) `echo` and editors add
    if not value.strip():
        raise ConfigError(f"{variable} {path!r} is empty", hint="write the value into the file")
    return value


def check_secrets(env: Mapping[str, str] | None = None) -> None:
    """Refuse a secret given both ways, for every registered variable (run when a command starts;
    the files themselves are read only where the value is used)."""
    env = os.environ if env is None else env
    for name in SECRET_VARIABLES:
        if env.get(name) and env.get(name + FILE_SUFFIX):
            secret_env(name, env)
