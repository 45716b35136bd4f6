"""Server memory and disk under many sessions: RSS, cached activations and exports, printed.

    python bench/memory.py                          # 28 sessions, the default budget
    python bench/memory.py --sessions 40 --budget-mb 64

Launches the app in this process on the embedded model, then N visitors (gradio_client) each
generate a 15-step run and export it. Prints the server's resident memory before and after, what
the run budget holds, and the export folder's size, and writes bench/results/memory.json.
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    """This process's resident set size, MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=28)
    p.add_argument("--budget-mb", type=float, help="run budget (default: the app's)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "memory.json"))
    args = p.parse_args()

    from gradio_client import Client

    from app import build_app
    from probe_core.serve.exports import ExportFolder
    from probe_core.serve.facade import RUN_BUDGET, ProbeDemo

    if args.budget_mb is not None:
        RUN_BUDGET.max_bytes = int(args.budget_mb * 2**20)
    exports = ExportFolder(Path(tempfile.mkdtemp(prefix="bench-exports-")), max_bytes=20 * 2**20)
    app = build_app(ProbeDemo.embedded(), exports)
    app.queue()
    _, url, _ = app.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    start = rss_mb()
    rows = []
    try:
        for k in range(args.sessions):
            c = Client(url, verbose=False)
            out = c.predict("a large red sphere on a gray plain floor", k, 15, 4.0, "best", 0.6,
                            1, 4, api_name="/generate")
            assert "done" in out[-1], out[-1]
            c.predict("best", api_name="/export")
            if (k + 1) % 7 == 0 or k + 1 == args.sessions:
                rows.append({"sessions": k + 1, "rss_mb": rss_mb(),
                             "runs_held_mb": RUN_BUDGET.held_bytes() / 2**20,
                             "exports_mb": folder_mb(exports.root)})
    finally:
        app.close()
    result = {"start_rss_mb": start, "budget_mb": RUN_BUDGET.max_bytes / 2**20,
              "export_cap_mb": exports.max_bytes / 2**20, "rows": rows}
    print(f"RSS at start {start:.0f} MB; run budget {result['budget_mb']:.0f} MB; "
          f"exports capped at {result['export_cap_mb']:.0f} MB")
    print("| sessions | server RSS (MB) | cached runs held (MB) | exports on disk (MB) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['sessions']} | {r['rss_mb']:.0f} | {r['runs_held_mb']:.1f} | "
              f"{r['exports_mb']:.1f} |")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
