"""The bubblewrap backend: own mount/PID/IPC/UTS/network namespaces, only the workspace writable, minimal env."""

from __future__ import annotations

import os
import random
import shutil
import threading
from pathlib import Path

from app.engines.sandbox import _egress, etc
from app.engines.sandbox._process import base_env, prlimit_prefix, supervise
from app.engines.sandbox.base import (
    EGRESS_MOUNT,
    SANDBOX_HOME,
    WORKSPACE_MOUNT,
    OutputCallback,
    SandboxResult,
    SandboxSpec,
)

# Top-level directories that are either real dirs or merged-/usr symlinks, depending on the distribution.
_SYSTEM_DIRS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
# A root worker drops to a throwaway uid per run: RLIMIT_NPROC does not apply to root, and a distinct
# uid keeps concurrent runs from sharing one process budget. The run's /etc/passwd names it `sandbox`.
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
    Either way the sandbox has its own network namespace: only `lo`, and the egress relay if asked.
    """

    name = "bubblewrap"
    isolated = True

    def __init__(self, bwrap: str = "bwrap", run_as_uid: int | None = None) -> None:
        self.bwrap = bwrap
        self.run_as_uid = run_as_uid

    def workspace_path(self, spec: SandboxSpec) -> str:
        return WORKSPACE_MOUNT

    def _uid(self) -> int | None:
        if os.geteuid() != 0:
            return None
        return self.run_as_uid if self.run_as_uid is not None else random.randrange(*_UID_RANGE)

    def bwrap_options(self, spec: SandboxSpec, uid: int | None, etc_dir: Path) -> list[str]:
        """Everything but the command; passed through a pipe (`--args FD`) so env values stay out of argv.

        `etc_dir` holds the generated /etc files (etc.write_etc).
        """
        tmpfs_size = str(spec.memory_mb * 1024 * 1024)  # tmpfs is memory that RLIMIT_AS does not count
        opts = ["--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
        if uid is None:
            opts.append("--unshare-user-try")
        else:
            # No user namespace as root: one mapping only root would make the uid switch fail.
            opts += ["--cap-add", "CAP_SETUID,CAP_SETGID"]  # only for setpriv, which drops everything
        opts += ["--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
        opts += ["--ro-bind", "/usr", "/usr"]
        for path in _SYSTEM_DIRS:
            if os.path.islink(path):
                opts += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                opts += ["--ro-bind", path, path]
        opts += self._etc_options(etc_dir)
        # A fresh /proc for the new PID namespace and a minimal /dev: nothing of the host's processes.
        opts += ["--proc", "/proc", "--dev", "/dev"]
        for tmp in ("/tmp", "/var/tmp"):
            opts += ["--perms", "1777", "--size", tmpfs_size, "--tmpfs", tmp]
        opts += ["--size", tmpfs_size, "--tmpfs", "/home", "--perms", "0777", "--dir", SANDBOX_HOME]
        opts += ["--tmpfs", "/run"]
        ro_binds = list(spec.extra_ro_binds)
        if spec.egress is not None:
            prefix = _egress.worker_python()[1]  # the relay runs on the worker's own interpreter
            ro_binds += [prefix] if prefix is not None else []
            opts += ["--ro-bind", str(_egress.RELAY_SCRIPT), _egress.RELAY_MOUNT]
            opts += ["--ro-bind", str(spec.egress.socket_path.parent.resolve()), EGRESS_MOUNT]
        # bwrap creates missing parents of a bind as root with mode 0700, which the dropped uid cannot
        # traverse (an agent venv under /work or /root, the artifacts dir under /tmp); existing dirs stay as
        # they are.
        for parent in _parents_of([*ro_binds, *spec.writable_binds]):
            opts += ["--perms", "0755", "--dir", parent]
        for path in ro_binds:
            opts += ["--ro-bind", str(path), str(path)]
        for path in spec.writable_binds:
            opts += ["--bind", str(path), str(path)]
        ws = str(spec.workspace.resolve())
        opts += ["--ro-bind" if spec.workspace_readonly else "--bind", ws, WORKSPACE_MOUNT]
        opts += ["--chdir", WORKSPACE_MOUNT]
        env = base_env(spec, home=SANDBOX_HOME)
        env.update(etc.ca_env())
        if spec.egress is not None:
            env.update(_egress.proxy_env(spec.egress))
        for key, value in env.items():
            opts += ["--setenv", key, value]
        return opts

    @staticmethod
    def _etc_options(etc_dir: Path) -> list[str]:
        # A tmpfs made readable (0755) before anything is bound into it: bwrap would create /etc as root
        # 0700 for the binds, and the dropped uid could read nothing under it (git, DNS, TLS all fail).
        opts = ["--perms", "0755", "--tmpfs", "/etc"]
        generated = sorted(str(p.relative_to(etc_dir)) for p in etc_dir.rglob("*") if p.is_file())
        for parent in _parents_of(f"/etc/{name}" for name in generated):
            if parent != "/etc":
                opts += ["--perms", "0755", "--dir", parent]
        for name in generated:
            opts += ["--ro-bind", str(etc_dir / name), f"/etc/{name}"]
        for name in etc.HOST_FILES:
            opts += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        return [*opts, "--remount-ro", "/etc"]

    def run(self, spec: SandboxSpec, *, on_output: OutputCallback, cancel: threading.Event) -> SandboxResult:
        uid = self._uid()
        drop = [] if uid is None else _hand_over(spec, uid)
        relay = [] if spec.egress is None else _egress.relay_command(spec.egress, _egress.worker_python()[0])
        with etc.run_dir(spec.workspace) as run_dir:
            etc_dir = run_dir / "etc"
            run_uid, run_gid = (os.getuid(), os.getgid()) if uid is None else (uid, uid)
            etc.write_etc(etc_dir, uid=run_uid, gid=run_gid, extra_ca_pem=spec.extra_ca_pem)
            options_fd = _pipe_holding(self.bwrap_options(spec, uid, etc_dir))
            try:
                return supervise(
                    [*prlimit_prefix(spec), self.bwrap, "--args", str(options_fd), "--", *drop, *relay, *spec.argv],
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                    cwd="/",
                    stdin=spec.stdin,
                    timeout_s=spec.timeout_s,
                    max_output_bytes=spec.max_output_bytes,
                    on_output=on_output,
                    cancel=cancel,
                    pass_fds=(options_fd,),
                )
            finally:
                os.close(options_fd)


def _pipe_holding(args: list[str]) -> int:
    """The read end of a pipe holding `args` NUL-terminated, for bwrap's `--args FD`."""
    payload = b"".join(arg.encode() + b"\0" for arg in args)
    # The pipe buffer (64 KiB) holds any realistic option list; bigger would block here.
    if len(payload) > 60_000:
        raise ValueError("sandbox environment too large")
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, payload)
    finally:
        os.close(write_fd)
    return read_fd


def _hand_over(spec: SandboxSpec, uid: int) -> list[str]:
    """Give the throwaway uid what it must own, and return the `setpriv ... --` that drops to it."""
    if not spec.workspace_readonly:
        _chown_tree(spec.workspace, uid, uid)
    for path in spec.writable_binds:
        _chown_tree(Path(path), uid, uid)
    if spec.egress is not None:
        # Inside, the bind shows the directory's own mode: the run's uid must be able to traverse it to
        # reach the socket (the proxy makes the socket itself 0666), and no one else on the host should.
        os.chown(spec.egress.socket_path.parent, uid, uid)
    return [
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
    ]
