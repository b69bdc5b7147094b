"""The `evprop` command line. Every subcommand is a thin wrapper around a stage function.

Bad input (config, data, checkpoint, NIR file) ends in one line `evprop: error: ...` and exit code 2; `--debug`
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import ConfigError, load_config
from .targets import FORMATS, RUNTIMES

EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 1

EXAMPLES = {
    "run": "evprop run configs/default.toml --out runs/default --set train.epochs=5",
    "train": "evprop train configs/default.toml --out runs/default   |   evprop train --resume runs/default",
    "evaluate": "evprop evaluate runs/default --split test",
    "quantise": "evprop quantise runs/default",
    "export": "evprop export runs/default   |   evprop export runs/default --for norse   |   "
              "evprop export runs/default --format netx",
    "verify": "evprop verify runs/default --samples 20 --max-accuracy-drop 2 --junit verify.xml   |   "
              "evprop verify runs/default --runtime netx",
    "report": "evprop report runs/default",
    "data": "evprop data download shd --root ~/data   |   evprop data spoken-digits --out data/spoken   |   "
            "evprop data encode-audio wavs/ --out clips.h5 --raster clip0.png",
    "sweep": "evprop sweep configs/default.toml --grid network.hidden=100,200 --seeds 8 --out runs/sweep",
    "bench": "evprop bench --hidden 256 --steps 1000 --batch 32 --algorithm eventprop --json --out results.jsonl",
    "gradcheck": "evprop gradcheck --reference tests/data/mlgenn/tiny_cases.json --case A_ff_nodelay",
}


def _add_config_args(parser):
    parser.add_argument("config", nargs="?", type=Path, default=Path("configs/default.toml"),
                        help="TOML configuration (default: configs/default.toml)")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<config file stem>)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key by its dotted name, e.g. --set train.epochs=5")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evprop", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--log-json", type=Path, metavar="FILE",
                        help="also write every log record as one JSON object per line to FILE (for CI)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, help_text):
        return sub.add_parser(name, help=help_text, description=f"{help_text}\n\nexample:\n  {EXAMPLES[name]}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    _add_config_args(add("run", "train, quantise, export, verify and report in one go (verify needs the [lava] "
                                "extra: Python 3.10)"))
    train = add("train", "train with EventProp (writes checkpoint.npz, history.jsonl)")
    _add_config_args(train)
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue a killed run from its last completed epoch (uses the run's config.toml)")
    evaluate = add("evaluate", "accuracy, loss and spikes of a trained run on a split (float and fixed point)")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"])
    add("quantise", "quantise a trained run to fixed point (writes fixed_point.npz)").add_argument(
        "run_dir", type=Path)
    export = add("export", "export a run's network to NIR (model.nir) or ONNX (model.onnx, one time step)")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--format", choices=tuple(FORMATS), default="nir",
                        help="; ".join(f"{f.name}: {f.file_name}, {f.help}" for f in FORMATS.values()))
    from ..export.nir_targets import IMPORTERS
    export.add_argument("--for", dest="target", choices=sorted(IMPORTERS), default=None,
                        help="with --format nir: write model.LIBRARY.nir, whose values make that library's "
                             "forward-Euler NIR importer run the float network as trained (docs/nir_importers.md)")
    add("report", "regenerate report.json and report.html of a run").add_argument("run_dir", type=Path)
    verify = add("verify", "run the NIR file in Lava and compare with the fixed-point emulator (needs the "
                          "[lava] extra: Python 3.10)")
    verify.add_argument("run_dir", type=Path)
    verify.add_argument("--runtime", choices=tuple(RUNTIMES), default="nir",
                        help="; ".join(f"{r.name}: {r.help}" for r in RUNTIMES.values()))
    verify.add_argument("--samples", type=int, default=None, help="test samples run in Lava")
    verify.add_argument("--timeout", type=float, default=None, help="hard limit for the Lava run [s]")
    verify.add_argument("--min-output-agreement", type=float, default=None, metavar="F",
                        help="also fail unless a fraction >= F (0..1) of the verified samples has identical outputs")
    verify.add_argument("--max-accuracy-drop", type=float, default=None, metavar="PP",
                        help="also fail if the fixed-point test accuracy is more than PP percentage points below "
                             "the float one")
    verify.add_argument("--no-bit-exact", action="store_true",
                        help="do not require emulator == Lava bit for bit (default: required)")
    verify.add_argument("--junit", type=Path, metavar="FILE",
                        help="write JUnit XML (one testcase per criterion and per verified sample) for CI")
    data = add("data", "get and make data sets: download SHD/SSC, encode audio, synthesise spoken digits")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    download = data_sub.add_parser("download", help="fetch SHD or SSC into <root>/SHD or <root>/SSC (md5 checked)")
    download.add_argument("dataset", choices=["shd", "ssc"])
    download.add_argument("--root", type=Path, required=True)
    encode = data_sub.add_parser("encode-audio", help="WAV files -> SHD-format spikes (cochlear front end)")
    encode.add_argument("src", type=Path, help="a folder with one sub-folder per class, or a CSV path,label[,speaker]")
    encode.add_argument("--out", type=Path, required=True, help="SHD-format HDF5 file to write")
    encode.add_argument("--channels", type=int, default=700)
    encode.add_argument("--raster", type=Path, help="also write a PNG raster of one clip")
    encode.add_argument("--sample", type=int, default=0, help="which clip the raster shows")
    digits = data_sub.add_parser("spoken-digits", help="synthesise digits 0-9 (English, German) with espeak-ng")
    digits.add_argument("--out", type=Path, required=True)
    digits.add_argument("--channels", type=int, default=700)
    sweep = add("sweep", "train configurations x seeds in parallel processes; mean +- sd per configuration")
    sweep.add_argument("config", type=Path)
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="values of one config key to sweep (repeat for a grid)")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per configuration (train.seed = 0..N-1)")
    sweep.add_argument("--jobs", type=int, default=None, help="parallel processes (default: one per core)")
    sweep.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="run the jobs as Ray tasks on this cluster (HOST:PORT of the head, auto, or local for a "
                            "new local instance); needs pip install -e '.[ray]'")
    sweep.add_argument("--out", type=Path, default=None, help="folder of the runs (default runs/sweep-<stem>)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key in every run, e.g. --set train.epochs=5")
    from .bench import add_bench_arguments
    add_bench_arguments(add("bench", "training speed and memory on the SHD-shaped workload (synthetic, seeded)"))
    grad = add("gradcheck", "compare evprop's gradients with a reference case (tiny_cases.json format)")
    grad.add_argument("--reference", type=Path, required=True)
    grad.add_argument("--case", required=True)
    grad.add_argument("--no-mlgenn-last-step", action="store_true",
                      help="do not reproduce mlGeNN's zeroing of currents in the last step")
    return parser


def _run_dir(args) -> Path:
    return args.out if args.out is not None else Path("runs") / args.config.stem


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    json_handler = None
    if args.log_json is not None:
        from .progress import JsonLinesHandler
        json_handler = JsonLinesHandler(args.log_json)
        json_handler.setLevel(logging.INFO)
        logging.getLogger().addHandler(json_handler)
        logging.getLogger().setLevel(logging.INFO)
        for handler in logging.getLogger().handlers:
            if handler is not json_handler and args.quiet:
                handler.setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, ValueError, OSError, RuntimeError) as err:
        if args.debug:
            raise
        message = " ".join(str(err).split())
        if json_handler is not None:
            json_handler.emit(logging.makeLogRecord({"name": "evprop", "levelname": "ERROR", "levelno": 40,
                                                     "msg": message, "event": "error"}))
        print(f"evprop: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if json_handler is not None:
            logging.getLogger().removeHandler(json_handler)
            json_handler.close()


def cmd_run(args) -> int:
    from .stages import run_pipeline, summary_table
    config = load_config(args.config, args.set)
    report = run_pipeline(config, _run_dir(args))
    print(summary_table(report))
    return 0 if report["equivalence"]["emulator_vs_lava"]["bit_exact"] else EXIT_CHECK_FAILED


def cmd_train(args) -> int:
    from .stages import train_stage
    if args.resume is not None:
        if args.set:
            raise ConfigError("--resume continues a run with its own config.toml; --set is not allowed with it")
        train_stage(None, args.resume, resume=True)
    else:
        train_stage(load_config(args.config, args.set), _run_dir(args))
    return 0


def cmd_evaluate(args) -> int:
    from .stages import evaluate_stage
    print(json.dumps(evaluate_stage(args.run_dir, args.split), indent=1))
    return 0


def cmd_quantise(args) -> int:
    from .stages import quantise_stage
    print(json.dumps(quantise_stage(args.run_dir), indent=1))
    return 0


def cmd_export(args) -> int:
    if args.target is not None:
        if args.format != "nir":
            raise ValueError(f"--for {args.target}: applies to --format nir only, not --format {args.format}")
        from ..export.nir_targets import export_nir_for
        from .stages import trained_network
        path = args.run_dir / f"model.{args.target}.nir"
        export_nir_for(path, trained_network(args.run_dir), args.target)
        print(path)
        return 0
    from .stages import export_stage
    print(export_stage(args.run_dir, args.format))
    return 0


def cmd_verify(args) -> int:
    """Verify, then gate: exit 0 if every criterion holds, EXIT_CHECK_FAILED (1) if one fails, 2 on bad input or a
    Lava timeout/crash. A completed verification replaces the runtime's summary and gate files (verify.json and
    gate.json for nir, verify_netx.json and gate_netx.json for netx) together; a failed one leaves the run as it
    was and writes only the JUnit file (if asked for), which then records the failure."""
    from ..hw_sim.lava_sim import LavaNotInstalled
    from ..model.io import atomic_write_all
    from .gate import GateCriteria, failed_run, gate_run_dir, summary_json, write_junit
    from .stages import json_writer, run_verification
    criteria = GateCriteria(bit_exact=not args.no_bit_exact, min_output_agreement=args.min_output_agreement,
                            max_accuracy_drop_pp=args.max_accuracy_drop)      # bad values fail before Lava runs
    runtime = RUNTIMES[args.runtime]
    try:
        verification = run_verification(args.run_dir, args.samples, args.timeout, runtime=runtime.name)
    except LavaNotInstalled:
        raise                                              # nothing ran: no gate.json, exit 2 with the reason
    except (TimeoutError, RuntimeError) as err:
        if args.junit is not None:
            write_junit(args.junit, failed_run(str(err), criteria))
        raise
    # per sample from the verification, float_test_accuracy from train.json, fixed point from quantise.json
    result = gate_run_dir(args.run_dir, criteria, verify_summary=verification)
    gate_text = summary_json(result, criteria)
    atomic_write_all({args.run_dir / runtime.summary_name: json_writer(verification),
                      args.run_dir / runtime.gate_name: lambda handle: handle.write(gate_text.encode())})
    summary = {k: v for k, v in verification.items() if k != "per_sample"}
    if args.junit is not None:
        write_junit(args.junit, result, summary["verify_s"])
    for check in result.failures:
        logging.getLogger("evprop").error("gate: %s failed: %s", check.name, check.message)
    print(json.dumps({**summary, "gate": {"passed": result.passed,
                                          "failures": [c.message for c in result.failures]}}, indent=1))
    return 0 if result.passed else EXIT_CHECK_FAILED


def cmd_report(args) -> int:
    from .stages import report_stage, summary_table
    print(summary_table(report_stage(args.run_dir)))
    return 0


def cmd_data(args) -> int:
    if args.data_command == "download":
        from ..data.download import download_dataset
        for path in download_dataset(args.dataset, args.root):
            print(path)
    elif args.data_command == "encode-audio":
        from ..data.audio import FrontEnd, audio_file_spikes, collect_sources, encode_to_hsd, plot_raster
        from .progress import terminal_bar
        front_end = FrontEnd(n_channels=args.channels)
        bar = terminal_bar(f"encoding {args.out.name}", 1, unit="clips")

        def on_progress(done, total):
            bar.total = total
            bar.update(done - bar.done)
        print(json.dumps(encode_to_hsd(args.src, args.out, front_end, on_progress=on_progress)))
        bar.close()
        if args.raster:
            entries, _ = collect_sources(args.src)
            if not 0 <= args.sample < len(entries):
                raise ValueError(f"--sample {args.sample}: {args.src} holds {len(entries)} clips")
            times, channels = audio_file_spikes(entries[args.sample][0], front_end)
            plot_raster(times, channels, args.raster, Path(entries[args.sample][0]).name, front_end.n_channels)
    else:
        from ..data.audio import FrontEnd
        from ..data.spoken_digits import make_spoken_digits
        paths = make_spoken_digits(args.out, front_end=FrontEnd(n_channels=args.channels))
        print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


def cmd_sweep(args) -> int:
    from .sweep import run_sweep, summary_table
    out = args.out or Path("runs") / f"sweep-{args.config.stem}"
    print(summary_table(run_sweep(args.config, args.grid, args.seeds, out, args.jobs, tuple(args.set),
                                  ray_address=args.ray)))
    return 0


def cmd_bench(args) -> int:
    from .bench import cmd_bench as run
    return run(args)


def cmd_gradcheck(args) -> int:
    from ..train.reference import gradcheck, load_cases
    result = gradcheck(load_cases(args.reference), args.case, mlgenn_last_step=not args.no_mlgenn_last_step)
    print(json.dumps(result))
    return 0


COMMANDS = {"run": cmd_run, "train": cmd_train, "evaluate": cmd_evaluate, "quantise": cmd_quantise, "export": cmd_export,
            "verify": cmd_verify, "report": cmd_report, "data": cmd_data, "sweep": cmd_sweep, "bench": cmd_bench, "gradcheck": cmd_gradcheck}

if __name__ == "__main__":
    sys.exit(main())
