"""The `ai-usage` command: serve, migrate."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from app.logs import configure_logging
from app.settings import ConfigError, Settings


# Defaults of `serve` flags that the environment may set (containers, systemd units).
SERVE_VARIABLES = ("AI_USAGE_HOST", "AI_USAGE_PORT", "AI_USAGE_ROLE", "AI_USAGE_WORKERS", "AI_USAGE_THREADS")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai-usage", description="AI usage analytics: OTLP in, Umbraco.AI analytics API out.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the OTLP receiver and the analytics API")
    serve.add_argument("--host", default=os.environ.get("AI_USAGE_HOST", "127.0.0.1"), help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("AI_USAGE_PORT", "4318")), help="HTTP port for OTLP/HTTP and the API (default 4318)")
    serve.add_argument("--grpc-port", type=int, default=None, help="also serve OTLP/gRPC on this port (conventionally 4317); overrides AI_USAGE_GRPC_PORT")
    serve.add_argument("--role", choices=("all", "ingest", "api"), default=os.environ.get("AI_USAGE_ROLE", "all"),
                       help="all: OTLP and the API; ingest: OTLP only; api: the API only (separate processes need a ClickHouse server)")
    serve.add_argument("--allow-open", action="store_true", help="serve without keys on a non-loopback address (same as AI_USAGE_ALLOW_OPEN=true)")
    serve.add_argument("--workers", type=int, default=int(os.environ.get("AI_USAGE_WORKERS", "1")), help="worker processes (1 with embedded ClickHouse)")
    serve.add_argument("--threads", type=int, default=int(os.environ.get("AI_USAGE_THREADS", "32")), help="threads per worker")

    commands.add_parser("migrate", help="apply the ClickHouse migrations and the retention setting, then exit")

    generate = commands.add_parser("generate", help="write synthetic operations straight into ClickHouse (benchmarks, demos)")
    generate.add_argument("--operations", type=int, required=True, help="number of operations to write")
    generate.add_argument("--days", type=int, required=True, help="spread them over this many days, ending now")
    generate.add_argument("--seed", type=int, default=1, help="same seed, same data")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"ai-usage: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)

    try:
        if args.command == "serve":
            from app.server import ServeOptions, serve as run_server

            settings = _with_grpc(settings, args.host, args.grpc_port)
            if args.allow_open:
                settings = dataclasses.replace(settings, allow_open=True)
            run_server(settings, ServeOptions(host=args.host, port=args.port, role=args.role, workers=args.workers, threads=args.threads))
        elif args.command == "migrate":
            return _migrate(settings)
        elif args.command == "generate":
            return _generate(settings, args.operations, args.days, args.seed)
    except ConfigError as error:
        print(f"ai-usage: {error}", file=sys.stderr)
        return 2
    return 0


def _with_grpc(settings: Settings, host: str, grpc_port: int | None) -> Settings:
    port = grpc_port if grpc_port is not None else settings.ingest.grpc_port
    if port is not None and not 0 < port < 65536:
        raise ConfigError("--grpc-port must be a TCP port (1-65535)")
    ingest = dataclasses.replace(settings.ingest, grpc_port=port, grpc_host=host)
    return dataclasses.replace(settings, ingest=ingest)


def _open_migrated(settings: Settings):
    from app.server import check_data_directory
    from clickhouse.client import Database
    from clickhouse.migrate import migrate

    check_data_directory(settings)
    database = Database(settings.clickhouse_url)
    database.ensure_database()
    applied = migrate(database.client(), settings.retention_days)
    return database, applied


def _migrate(settings: Settings) -> int:
    database, applied = _open_migrated(settings)
    database.close()
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "nothing to apply"
    print(f"ai-usage: migrations: {names}")
    return 0


def _generate(settings: Settings, operations: int, days: int, seed: int) -> int:
    from clickhouse.synthetic import generate

    if operations <= 0 or days <= 0:
        raise ConfigError("--operations and --days must be positive")
    database, _ = _open_migrated(settings)
    try:
        written = generate(database, operations=operations, days=days, seed=seed)
    finally:
        database.close()
    print(f"ai-usage: wrote {written} synthetic operations over {days} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
