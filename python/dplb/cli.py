"""The `dplb` command line. `dplb check-config FILE` validates a node config the way
the node will; `run` runs a node; `demo` runs one with traffic in network namespaces;
`ctl` talks to a node's API; `harness-api` serves the API over the engine harness
(development)."""

from __future__ import annotations

import argparse
import sys

from dplb.config import ConfigError, load_config


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except FileNotFoundError:
        print(f"dplb: {args.config}: no such file", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"dplb: {args.config}: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.config}: ok (node {cfg.node.name}, {cfg.dataplane.workers} workers, "
        f"{len(cfg.dataplane.ports)} ports, {len(cfg.services)} services)"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from dplb.node import run

    return run(args.config, status_file=args.status_file)


def _demo(args: argparse.Namespace) -> int:
    from dplb.demo.run import main as demo_main

    return demo_main(args)


def _ctl(args: argparse.Namespace) -> int:
    from dplb.ctl import run as run_ctl

    return run_ctl(args)


def _harness_api(args: argparse.Namespace) -> int:
    from dplb.api.serve import serve_harness

    return serve_harness(args.config, args.listen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dplb", description="dplb: Layer-4 full-NAT load balancer"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a node config file")
    check.add_argument("config", help="path to the node config (YAML)")
    check.set_defaults(func=_check_config)
    run = sub.add_parser("run", help="run a node: the DPDK data plane with its control plane")
    run.add_argument("--config", required=True, help="path to the node config (YAML)")
    run.add_argument(
        "--status-file",
        metavar="PATH",
        help="rewrite PATH every second with the node's counters as JSON",
    )
    run.set_defaults(func=_run)
    from dplb.demo.run import __doc__ as demo_doc
    from dplb.demo.run import add_arguments as add_demo_arguments

    demo = sub.add_parser(
        "demo",
        help="the demo: namespaces, a node, three real servers, live HTTP traffic (root)",
        description=demo_doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_demo_arguments(demo)
    demo.set_defaults(func=_demo)
    from dplb.ctl import __doc__ as ctl_doc
    from dplb.ctl import add_arguments as add_ctl_arguments

    ctl = sub.add_parser(
        "ctl",
        help="talk to a node's API: services, reals, sessions, stats, config",
        description=ctl_doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_ctl_arguments(ctl)
    ctl.set_defaults(func=_ctl)
    harness = sub.add_parser(
        "harness-api",
        help="serve the management API over the engine harness (no DPDK): for development",
    )
    harness.add_argument("--config", required=True, help="path to the node config (YAML)")
    harness.add_argument("--listen", help="HOST:PORT (default: the config's api.listen)")
    harness.set_defaults(func=_harness_api)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
