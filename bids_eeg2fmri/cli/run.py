"""Entry point of the BIDS-App: ``bids-eeg2fmri BIDS_DIR OUTPUT_DIR {participant,group}``."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

from ..bids.derivatives import dataset_links, remove_stale_temporaries, write_dataset_description
from ..bids.eegderivatives import check_eeg_derivatives
from ..bids.filters import check_filters
from ..bids.fmriprep import check_fmri_derivatives
from ..bids.layout import collect_participants, format_plan, load_filters, load_layout
from ..bids.validate import validate_input
from ..config import Config
from ..errors import ExitCode, UserError, from_oserror
from ..runlogs import save_config_text
from ..reports.html import write_participant_report
from ..reports.methods import stages_from_config, update_citation
from .checks import check_bids_dir, check_output_dir, check_path_options, check_work_dir
from .execute import execute
from .faults import Interrupted, handle_signals, stop_workers
from .preflight import check_inputs, check_model_dir
from .parser import PROG, parse_args

log = logging.getLogger("bids_eeg2fmri")


def main(argv: list[str] | None = None) -> int:
    """Run the BIDS-App and return its exit code; user errors become one line on stderr."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # nipype would otherwise look up its latest version online at every start.
    os.environ.setdefault("NIPYPE_NO_ET", "1")
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # nipype logs through its own handlers; propagating to ours would print every line twice.
    for name in ("nipype", "nipype.workflow", "nipype.interface", "nipype.utils"):
        logging.getLogger(name).propagate = False
    if not debug:
        # pybids' schema loader announces its default schema at INFO on every start, and nipype
        # prints several lines per node; node failures are still reported (ERROR).
        logging.getLogger("bidsschematools").setLevel(logging.WARNING)
        logging.getLogger("nipype.workflow").setLevel(logging.WARNING)
    try:
        with handle_signals():
            values, config_file = parse_args(argv)
            config = Config.from_sources(values, config_file)
            limit_threads(config.execution.omp_nthreads)
            return int(run(config))
    except Interrupted as exc:
        stop_workers()  # also what runs outside the pipeline (the validator, the apply step)
        print(f"{PROG}: interrupted by {exc}; stopped", file=sys.stderr)
        # Leave now, as the signal itself would: the interpreter's clean-up would release the
        # stopped pool's semaphores through a resource tracker that is gone, printing tracebacks.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.code)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (UserError, OSError) as exc:
        if debug:
            traceback.print_exc()
        error = exc if isinstance(exc, UserError) else from_oserror(exc)
        print(f"{PROG}: error: {error.oneline()}", file=sys.stderr)
        return int(error.code)


THREAD_VARIABLES = ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


def limit_threads(n: int) -> None:
    """Cap the threads of ITK (ANTs) and BLAS in this process and the workers it starts.

    ITK's multi-threaded metrics sum in a thread-dependent order, so only ``--omp-nthreads 1``
    gives bit-identical registrations from run to run (as in fMRIPrep).
    """
    if n > 0:
        for var in THREAD_VARIABLES:
            os.environ[var] = str(n)


def run(config: Config) -> ExitCode:
    """Execute the analysis level that ``config`` asks for.

    Parameters
    ----------
    config
        The resolved configuration.

    Returns
    -------
    ExitCode
    """
    ex = config.execution
    ex.bids_dir = check_bids_dir(ex.bids_dir)
    ex.output_dir = check_output_dir(ex.output_dir, ex.bids_dir)
    ex.work_dir = check_work_dir(ex.work_dir, ex.bids_dir)
    check_path_options(config)
    if ex.analysis_level == "participant":
        return run_participant(config)
    return run_group(config)


def run_participant(config: Config) -> ExitCode:
    """Validate, index and pair the selected runs, then preprocess every run (fMRI and EEG)."""
    ex = config.execution
    if not ex.skip_bids_validation:
        log.info("validating %s with bids-validator-deno", ex.bids_dir)
        validate_input(ex.bids_dir)
    layout = load_layout(ex.bids_dir, ex.bids_database_dir)
    filters = load_filters(ex.bids_filter_file)
    check_filters(layout, filters, ex.bids_filter_file, {
        "subject": ex.participant_label, "session": ex.session_label, "task": ex.task_label})
    plans = collect_participants(layout, participant_label=ex.participant_label,
                                 session_label=ex.session_label, task_label=ex.task_label,
                                 filters=filters)
    print(format_plan(plans), flush=True)
    if config.eeg.eeg_derivatives is not None:
        check_eeg_derivatives(config.eeg.eeg_derivatives,
                              [p.eeg.path for plan in plans for p in plan.pairs if p.eeg])
    fmriprep = None if config.fmri.fmri_derivatives is None else check_fmri_derivatives(
        config.fmri.fmri_derivatives, [p.bold.path for plan in plans for p in plan.pairs if p.bold])
    check_inputs(plans, config.fmri.use_t1w)
    if ex.model_dir is not None:
        check_model_dir(ex.model_dir, plans)
    # Only the selected participants' folders: SLURM array tasks of other participants may be
    # writing their own temporaries into the same output folder right now.
    for plan in plans:
        _clean_interrupted(ex.output_dir / f"sub-{plan.subject}")
    write_dataset_description(ex.output_dir, [ex.bids_dir], links=dataset_links(
        ex.bids_dir, config.eeg.eeg_derivatives, config.fmri.fmri_derivatives))
    save_config(config)
    if ex.dry_run:
        return ExitCode.OK
    from ..workflows.base import init_participant_wf

    wf = init_participant_wf(config=config, plans=plans, fmriprep=fmriprep)
    code, failures = execute(wf, work_dir=ex.work_dir, crash_dir=ex.output_dir / "logs" / "crash",
                             nprocs=ex.nprocs, mem_gb=ex.mem_gb,
                             stop_on_first_crash=ex.stop_on_first_crash)
    for failure in failures:  # one line per failed run, naming it and the problem
        print(f"{PROG}: error: {failure.oneline()}", file=sys.stderr)
    if ex.model_dir is not None:
        from ..apply.run import apply_models

        code = max(code, apply_models(config, plans))
    # Reports also for failed runs: they list the crash files next to what did finish.
    for plan in plans:
        report = write_participant_report(ex.output_dir, plan.subject, bids_dir=ex.bids_dir)
        log.info("report: %s", report)
    ran = sorted({m for plan in plans for p in plan.pairs
                  for m, present in (("fmri", p.bold), ("eeg", p.eeg)) if present is not None})
    update_citation(ex.output_dir, stages_from_config(
        config.to_dict(), ran=ran, extra={"fmri": {"dummy_scans": config.fmri.dummy_scans}}))
    if code != ExitCode.OK:
        print(f"{PROG}: error: some runs failed (see above and {ex.output_dir / 'logs' / 'crash'})",
              file=sys.stderr)
    return code


def run_group(config: Config) -> ExitCode:
    """Cross-validate and train models on the participant derivatives (``group/run.py``)."""
    from ..group.run import run_group_level

    # The group level reads the participant level's saved options (for CITATION.md) before
    # this run's configuration replaces them.
    return run_group_level(config, save=lambda: save_config(config))


def _clean_interrupted(folder: Path) -> None:
    if folder.is_dir():
        stale = remove_stale_temporaries(folder)
        if stale:
            log.info("removed %d unfinished file(s) left by an interrupted run in %s",
                     len(stale), folder)


def save_config(config: Config) -> Path:
    """Write the resolved configuration to ``<output_dir>/logs/config-<time>-<pid>.toml``."""
    return save_config_text(config.execution.output_dir, config.to_toml())


if __name__ == "__main__":
    sys.exit(main())
