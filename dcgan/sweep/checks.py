"""What a sweep needs of the workspace, the git remote and the DVC remote, checked before any
work: workers clone the git remote, so they see only a committed, pushed state and the
committed .dvc/config; an experiment name that the remote already holds would make a trial's
push fail at its end (dvc#6674); and trials pull what dvc.lock names for the stages they share."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from dcgan.errors import DcganError
from dcgan.sweep.trial import FIXED_STAGES, environment


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=300)


def last_line(done: subprocess.CompletedProcess) -> str:
    """What a failed command said last: DVC's last ERROR line (DVC ends with a line on where to
    ask for help), else its stderr's last line, else its stdout's."""
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return ([line for line in lines if line.startswith("ERROR")] or lines or ["no output"])[-1]


def remote_url(repo: Path, remote: str) -> str:
    """The URL workers clone: the git remote's, as the driver's clone knows it."""
    found = git(repo, "remote", "get-url", remote)
    if found.returncode != 0:
        raise DcganError(
            f"git has no remote {remote!r} here; add one (git remote add {remote} URL) or "
            "name another with --git-remote"
        )
    url = found.stdout.strip()
    if urlsplit(url).password is not None:  # scp-like and path URLs have none
        raise DcganError(
            f"git remote {remote!r} has a password in its URL, which would travel in each "
            "trial's arguments (Ray's dashboard shows them); use a credential helper or an "
            "SSH key on every machine instead"
        )
    return url


def clean_workspace(repo: Path) -> None:
    """No change git would not clone: modified, staged or untracked (and not ignored) files."""
    status = git(repo, "status", "--porcelain")
    if status.returncode != 0:
        raise DcganError(f"{repo} is not a git repository; run dcgan sweep in a clone")
    changed = status.stdout.splitlines()
    if changed:
        raise DcganError(
            f"the workspace has {len(changed)} uncommitted change(s) (first: "
            f"{changed[0][3:]}); commit and push them, or stash them: trials run the "
            "commit, not the workspace"
        )


def pushed_commit(repo: Path, remote: str, commit: str) -> None:
    """``commit`` must be on the remote: fetched, then looked for in its branches."""
    fetched = git(repo, "fetch", "--quiet", remote)
    if fetched.returncode != 0:
        raise DcganError(
            f"cannot fetch git remote {remote!r} ({last_line(fetched)}); check its URL and access"
        )
    holding = git(repo, "branch", "--remotes", "--contains", commit, "--format=%(refname:short)")
    if not any(ref.startswith(f"{remote}/") for ref in holding.stdout.split()):
        raise DcganError(
            f"commit {commit[:7]} is not on git remote {remote!r}, and workers clone from it; "
            f"push it first (git push {remote} HEAD)"
        )


def free_names(repo: Path, remote: str, names: list[str]) -> None:
    """No experiment of these names is on the remote already (refs/exps/<baseline>/<name>)."""
    listed = git(repo, "ls-remote", remote, "refs/exps/*")
    taken = {line.rsplit("/", 1)[-1] for line in listed.stdout.splitlines()}
    clash = [name for name in names if name in taken]
    if clash:
        raise DcganError(
            f"git remote {remote!r} already has an experiment named {clash[0]}; "
            "name this sweep another way with -n"
        )


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dvc", *args], cwd=repo, capture_output=True, text=True, env=environment()
    )


def dvc_remote(repo: Path, given: str | None) -> str:
    """The DVC remote trials pull from and push to: one the commit's .dvc/config names (a
    clone has no .dvc/config.local); ``given``, or the project's default."""
    listed = dvc(repo, "remote", "list", "--project")
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    if given is None:
        found = dvc(repo, "remote", "default", "--project")
        default = found.stdout.strip() if found.returncode == 0 else ""
        if not default:
            raise DcganError(
                "the project has no default DVC remote that a clone would see; name one with "
                "--dvc-remote, or add it to .dvc/config (dvc remote add -d NAME URL) and commit"
            )
        given = default
    if given not in names:
        raise DcganError(
            f"DVC remote {given!r} is not in the committed .dvc/config, so trials' clones "
            f"lack it; add it there (dvc remote add {given} URL), commit and push"
        )
    return given


def fixed_stages_recorded(repo: Path, commit: str) -> None:
    """The commit's dvc.lock must record the stages trials pull as the commit defines them:
    a trial pulls the outputs that lock names, so a stale entry would leave it nothing."""
    done = dvc(repo, "status", "--json", *FIXED_STAGES)
    try:
        status = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        raise DcganError(f"dvc status failed: {last_line(done)}") from None
    for stage, changes in status.items():
        # A dep that is "deleted" is only not built here yet (the push below builds it).
        deps = [c["changed deps"] for c in changes if isinstance(c, dict) and "changed deps" in c]
        stale = [c for c in changes if isinstance(c, str)]
        stale += [path for dep in deps for path, how in dep.items() if how != "deleted"]
        if stale:
            raise DcganError(
                f"dvc.lock at {commit[:7]} does not match stage {stage} (its code, params or "
                f"data changed); run dvc repro {' '.join(FIXED_STAGES)}, commit dvc.lock "
                "and push, then sweep"
            )
