"""The sweep's grid: `-S` values expanded with the grammar of `dvc exp run --queue -S`, by DVC's
own parser (Hydra's override grammar: ``1,2,3``, ``range(1,4)``, ``choice(...)``, quoted
lists), and each trial's params checked by the config's own checks before any work."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from dcgan.config import PARAMS_FILE, ParamsError, load_all
from dcgan.errors import DcganError

# A grid over this many trials is refused: at 17-55 minutes a trial on 2 cores, 64 trials are
# a week of one machine, and a typo (``range(0,1000)``) should cost a line, not a cluster.
MAX_TRIALS = 64
GRAMMAR = "use DVC's grammar: -S train.seed=0,1,2 or -S 'train.seed=range(0,3)'"


@dataclasses.dataclass(frozen=True)
class Trial:
    """One point of the grid: its experiment's name and its `-S` overrides."""

    name: str
    overrides: tuple[str, ...]


def expand(set_params: list[str], name: str) -> list[Trial]:
    """The grid's trials, named ``<name>-<k>`` from 1 as DVC's queue names a sweep's."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps
    from hydra.errors import HydraException

    if not set_params:
        raise DcganError(f"a sweep needs at least one -S KEY=VALUES; {GRAMMAR}")
    for given in set_params:
        if "=" not in given:
            raise DcganError(f"-S {given!r} is not KEY=VALUES; {GRAMMAR}")
    overrides = to_path_overrides(set_params)
    other = sorted(set(overrides) - {PARAMS_FILE})
    if other:
        raise DcganError(f"-S {other[0]}:...: a sweep sets {PARAMS_FILE} only; drop the file name")
    try:
        sweeps = get_hydra_sweeps(overrides)
    except (InvalidArgumentError, HydraException) as exc:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DcganError(f"-S {' '.join(set_params)}: {cause}; {GRAMMAR}") from None
    if len(sweeps) > MAX_TRIALS:
        raise DcganError(
            f"the grid has {len(sweeps)} trials, over the limit of {MAX_TRIALS}; "
            "split it into several sweeps"
        )
    return [Trial(f"{name}-{k}", tuple(sweep[PARAMS_FILE])) for k, sweep in enumerate(sweeps, 1)]


def check(trials: list[Trial], params: Path) -> None:
    """Apply each trial's overrides to a copy of ``params`` as `dvc exp run` will (DVC's own
    function), then load it with every stage's checks: a bad key or value fails here, in one
    line naming the trial, before any clone or cluster."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides

    with tempfile.TemporaryDirectory(prefix="dcgan-sweep-") as folder:
        copy = Path(folder) / PARAMS_FILE
        for trial in trials:
            shutil.copyfile(params, copy)
            try:
                apply_overrides(copy, list(trial.overrides))
            except InvalidArgumentError:
                raise DcganError(
                    f"trial {trial.name} ({' '.join(trial.overrides)}): a key is not in "
                    f"{params.name}; use the keys of docs/params.md"
                ) from None
            try:
                load_all(copy)
            except ParamsError as exc:  # the problem names the key; the copy is no file of theirs
                raise DcganError(
                    f"trial {trial.name} ({' '.join(trial.overrides)}): {exc.problem}; "
                    "change its -S values"
                ) from None


def describe(trials: list[Trial]) -> str:
    """The grid as the command prints it before it starts: one line a trial."""
    width = max(len(t.name) for t in trials)
    return "\n".join(f"  {t.name:<{width}}  {' '.join(t.overrides)}" for t in trials)
