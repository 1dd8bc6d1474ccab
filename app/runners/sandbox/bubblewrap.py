"""The bubblewrap backend: own mount/PID/IPC/UTS namespaces, only the workspace writable, minimal env."""

from __future__ import annotations

import os
import random
import shutil
import threading
from pathlib import Path

from app.runners.sandbox._process import base_env, prlimit_prefix, supervise
from app.runners.sandbox.base import (
    SANDBOX_HOME,
    WORKSPACE_MOUNT,
    OutputCallback,
    SandboxResult,
    SandboxSpec,
)

# Top-level directories that are either real dirs or merged-/usr symlinks, depending on the distribution.
_SYSTEM_DIRS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
# What of /etc programs need (TLS roots, name resolution, user names); no shadow, no host gitconfig.
_ETC_FILES = [
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/mime.types",
]
# A root worker drops to a throwaway uid per run: RLIMIT_NPROC does not apply to root, and a distinct
# uid keeps concurrent runs from sharing one process budget. These uids need no /etc/passwd entry.
_UID_RANGE = (200_000, 300_000)


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def _parents_of(paths) -> list[str]:
    """Every ancestor directory of `paths` below /, parents first, each once."""
    parents: list[str] = []
    for path in paths:
        for parent in reversed(Path(path).parents[:-1]):
            if str(parent) not in parents:
                parents.append(str(parent))
    return parents


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


class BubblewrapSandbox:
    """Runs each spec under bwrap; see the module docstring of base.py for the interface.

    As an unprivileged worker, bwrap builds a user namespace and the command runs as the worker's uid.
    As root, bwrap runs privileged with no user namespace (so it can bind paths a throwaway uid could
    not reach), and the command drops to a throwaway uid with no capabilities and no_new_privs.
    """

    name = "bubblewrap"

    def __init__(self, bwrap: str = "bwrap", run_as_uid: int | None = None) -> None:
        self.bwrap = bwrap
        self.run_as_uid = run_as_uid

    def workspace_path(self, spec: SandboxSpec) -> str:
        return WORKSPACE_MOUNT

    def _uid(self) -> int | None:
        if os.geteuid() != 0:
            return None
        return self.run_as_uid if self.run_as_uid is not None else random.randrange(*_UID_RANGE)

    def bwrap_options(self, spec: SandboxSpec, uid: int | None) -> list[str]:
        """Everything but the command; passed through a pipe (`--args FD`) so env values stay out of argv."""
        tmpfs_size = str(spec.memory_mb * 1024 * 1024)  # tmpfs is memory that RLIMIT_AS does not count
        if uid is None:
            opts = ["--unshare-all"]
            if spec.network:
                opts.append("--share-net")
        else:
            # --unshare-all would add a user namespace mapping only root, where the uid switch fails.
            opts = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
            if not spec.network:
                opts.append("--unshare-net")
            opts += ["--cap-add", "CAP_SETUID,CAP_SETGID"]  # only for setpriv, which drops everything
        opts += ["--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
        opts += ["--ro-bind", "/usr", "/usr"]
        for path in _SYSTEM_DIRS:
            if os.path.islink(path):
                opts += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                opts += ["--ro-bind", path, path]
        for path in _ETC_FILES:
            opts += ["--ro-bind-try", path, path]
        # A fresh /proc for the new PID namespace and a minimal /dev: nothing of the host's processes.
        opts += ["--proc", "/proc", "--dev", "/dev"]
        for tmp in ("/tmp", "/var/tmp"):
            opts += ["--perms", "1777", "--size", tmpfs_size, "--tmpfs", tmp]
        opts += ["--size", tmpfs_size, "--tmpfs", "/home", "--perms", "0777", "--dir", SANDBOX_HOME]
        opts += ["--tmpfs", "/run"]
        # bwrap creates missing parents of a bind as root with mode 0700, which the dropped uid cannot
        # traverse (an agent venv under /work or /root, the artifacts dir under /tmp); existing dirs stay as
        # they are.
        for parent in _parents_of([*spec.extra_ro_binds, *spec.writable_binds]):
            opts += ["--perms", "0755", "--dir", parent]
        for path in spec.extra_ro_binds:
            opts += ["--ro-bind", str(path), str(path)]
        for path in spec.writable_binds:
            opts += ["--bind", str(path), str(path)]
        ws = str(spec.workspace.resolve())
        opts += ["--ro-bind" if spec.workspace_readonly else "--bind", ws, WORKSPACE_MOUNT]
        opts += ["--chdir", WORKSPACE_MOUNT]
        for key, value in base_env(spec, home=SANDBOX_HOME).items():
            opts += ["--setenv", key, value]
        return opts

    def run(self, spec: SandboxSpec, *, on_output: OutputCallback, cancel: threading.Event) -> SandboxResult:
        uid = self._uid()
        drop: list[str] = []
        if uid is not None:
            if not spec.workspace_readonly:
                _chown_tree(spec.workspace, uid, uid)
            for path in spec.writable_binds:
                _chown_tree(Path(path), uid, uid)
            drop = [
                "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
            ]
        read_fd, write_fd = os.pipe()
        try:
            payload = b"".join(arg.encode() + b"\0" for arg in self.bwrap_options(spec, uid))
            # The pipe buffer (64 KiB) holds any realistic option list; bigger would block here.
            if len(payload) > 60_000:
                raise ValueError("sandbox environment too large")
            os.write(write_fd, payload)
            os.close(write_fd)
            write_fd = -1
            argv = [*prlimit_prefix(spec), self.bwrap, "--args", str(read_fd), "--", *drop, *spec.argv]
            return supervise(
                argv,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                cwd="/",
                stdin=spec.stdin,
                timeout_s=spec.timeout_s,
                max_output_bytes=spec.max_output_bytes,
                on_output=on_output,
                cancel=cancel,
                pass_fds=(read_fd,),
            )
        finally:
            os.close(read_fd)
            if write_fd != -1:
                os.close(write_fd)
