"""Write an evaluation result as JSON and Markdown, stamped with the index manifest and the git commit."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from eval.metrics import METRIC_NAMES

_ROOT = Path(__file__).resolve().parent.parent
#: Manifest keys shown in the Markdown header (whatever of them the manifest has).
_STAMP_KEYS = ("model", "corpus_sha256", "corpus_hash", "counts", "chunker", "tokenizer", "schema_version", "built_at")


def git_stamp(root: Path = _ROOT) -> dict:
    """Commit hash and whether tracked files differ from it (None when not in a git checkout)."""
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _runs(result: dict) -> dict[str, dict]:
    """{run name: evaluate() result} for a single result or an ablation bundle."""
    return result["runs"] if "runs" in result else {result.get("name", "run"): result}


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def render_markdown(result: dict) -> str:
    """Human-readable report: stamp, overall table per run and split, per-kind table, misses of the first run."""
    runs = _runs(result)
    first = next(iter(runs.values()))
    idx = result.get("index") or first.get("index") or {}
    lines = [f"# Retrieval evaluation: {result.get('name', first.get('name'))}", ""]
    lines.append(f"- created: {result.get('created', first.get('created'))}")
    g = result.get("git", {})
    lines.append(f"- git commit: `{g.get('commit')}`" + (" (uncommitted changes)" if g.get("dirty") else ""))
    for key in _STAMP_KEYS:
        if key in idx:
            lines.append(f"- {key}: `{json.dumps(idx[key], ensure_ascii=False, sort_keys=True)}`")
    base = first.get("search_settings") or {}
    if base:
        lines.append(f"- search settings: `{json.dumps(base, sort_keys=True)}`")
    for name, r in runs.items():
        diff = {k: v for k, v in (r.get("search_settings") or {}).items() if base.get(k) != v}
        if diff:
            lines.append(f"- `{name}` differs: `{json.dumps(diff, sort_keys=True)}`")
    lines.append(f"- matched on: {first.get('level')} ids; runs {first.get('depth')} deep; min_score: {_fmt(first.get('min_score'))}")
    if result.get("calibration"):
        cal = {k: v for k, v in result["calibration"].items() if k != "curve"}
        lines.append(f"- calibration (dev): `{json.dumps(cal, sort_keys=True)}`")
    if first.get("unresolved"):
        lines.append(f"- **{len(first['unresolved'])} gold anchors matched no provision** (see JSON `unresolved`)")
    lines += ["", "## Overall (answerable questions; abstention on out-of-corpus ones)", "",
              "OOC abstain: out-of-corpus questions given no answer (no hit, or none presented as an answer); false "
              "abstain: answerable questions given none; ECE: expected calibration error of the relevance of the "
              "first 10 hits (10 bins), where the index has a relevance stage.", ""]
    head = ["run", "split", "n", *METRIC_NAMES, "OOC abstain", "false abstain", "ECE", "p50 ms", "p95 ms"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in runs.items():
        for split, s in r["splits"].items():
            m, a, lat = s["overall"], s["abstention"], s["latency_ms"]
            cells = [name, split, str(s["n"]), *(_fmt(m.get(x)) for x in METRIC_NAMES),
                     _fmt(a["ooc_abstain_rate"]), _fmt(a["answerable_false_abstain_rate"]),
                     _fmt((s.get("calibration") or {}).get("ece")), f"{lat['p50']:.1f}", f"{lat['p95']:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
    kinds = sorted({k for r in runs.values() for s in r["splits"].values() for k in s["by_kind"]})
    if len(kinds) > 1:
        lines += ["", "## Per kind: Recall@5 / MRR@10 (out_of_corpus: share abstained)", ""]
        lines += ["| run | split | " + " | ".join(kinds) + " |", "|" + "---|" * (len(kinds) + 2)]
        for name, r in runs.items():
            for split, s in r["splits"].items():
                cells = []
                for k in kinds:
                    row = s["by_kind"].get(k, {})
                    if "recall@5" in row:
                        cells.append(f"{row['recall@5']:.2f} / {row['mrr@10']:.2f}")
                    else:
                        cells.append(_fmt(row.get("ooc_abstain_rate")))
                lines.append(f"| {name} | {split} | " + " | ".join(cells) + " |")
    main = runs.get("hybrid", first)  # the product's mode when it was run
    misses = [q for q in main["per_question"] if q["gold"] and (q.get("recall@5") or 0.0) < 1.0]
    if misses:
        lines += ["", f"## Misses of `{main.get('name')}` (Recall@5 < 1)", "", "| id | split | kind | query | first gold rank | R@5 |",
                  "|---|---|---|---|---|---|"]
        for q in misses[:60]:
            query = q["query"].replace("|", "\\|")
            lines.append(f"| {q['id']} | {q['split']} | {q['kind']} | {query} | {_fmt(q['first_relevant_rank'])} | {q['recall@5']:.2f} |")
    return "\n".join(lines) + "\n"


def _dump(obj, depth: int = 0) -> str:
    """JSON with nested objects indented but every list of scalars or per-question row on one line (diffable, small)."""
    if isinstance(obj, dict) and obj and depth < 6 and not _flat(obj):
        pad = " " * (depth + 1)
        items = [f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {_dump(v, depth + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        pad = " " * (depth + 1)
        return "[\n" + ",\n".join(pad + json.dumps(x, ensure_ascii=False, default=str) for x in obj) + "\n" + " " * depth + "]"
    return json.dumps(obj, ensure_ascii=False, default=str)


def _flat(d: dict) -> bool:
    return all(not isinstance(v, (dict, list)) or (isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v))
               for v in d.values()) and len(d) <= 12


#: A report JSON above this size has its per-question rows trimmed (``compact``) so that reports stay reviewable.
MAX_REPORT_BYTES = 200_000
_BRIEF = ("id", "split", "first_relevant_rank", "n_hits")


def compact(result: dict, limit: int = MAX_REPORT_BYTES) -> dict:
    """``result`` with per-question rows trimmed step by step until its JSON fits ``limit`` bytes.

    Steps: rows of the runs other than the main one (hybrid) keep only id, split, first relevant rank and hit count;
    then the main run's rows lose their score lists and keep the top 3 ids; then the other runs lose their rows; then
    the main run keeps full rows for its misses (Recall@5 < 1) and brief ones for the rest; then brief rows only.
    Metrics are never cut.
    """
    def size(r: dict) -> int:
        return len(_dump(r).encode("utf-8"))

    if size(result) <= limit:
        return result
    runs = result.get("runs")
    main_name = ("hybrid" if "hybrid" in runs else next(iter(runs))) if runs else None

    def with_rows(fn_main, fn_other) -> dict:
        if not runs:
            return {**result, "per_question": fn_main(result.get("per_question", []))}
        new = {n: {**r, "per_question": (fn_main if n == main_name else fn_other)(r.get("per_question", []))}
               for n, r in runs.items()}
        return {**result, "runs": new}

    brief = lambda rows: [{k: q.get(k) for k in _BRIEF} for q in rows]  # noqa: E731
    slim = lambda rows: [{**{k: v for k, v in q.items() if k not in ("top_scores", "ms")}, "top": q.get("top", [])[:3]}  # noqa: E731
                         for q in rows]
    misses = lambda rows: [q if q.get("gold") and (q.get("recall@5") or 0.0) < 1.0  # noqa: E731
                           else {k: q.get(k) for k in _BRIEF} for q in slim(rows)]
    none = lambda rows: []  # noqa: E731
    for fn_main, fn_other in ((lambda rows: rows, brief), (slim, brief), (slim, none), (misses, none),
                              (brief, none)):
        out = with_rows(fn_main, fn_other)
        if size(out) <= limit:
            break
    out["trimmed"] = f"per-question rows trimmed to fit {limit} bytes (eval/report.py compact)"
    return out


def write_report(result: dict, out_dir: Path | str = "eval/reports", name: str | None = None) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` under ``out_dir`` (stamped with the git commit); return both paths.

    The Markdown is rendered from the full result; the JSON is ``compact``-ed when it would exceed 200 kB.
    """
    result = {**result, "git": result.get("git") or git_stamp()}
    name = re.sub(r"[^\w.-]+", "-", name or result.get("name") or "eval").strip("-") or "eval"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / f"{name}.json", out / f"{name}.md"
    _write_trec(result, out / "runs", name)
    result = _without_private(result)
    jpath.write_text(_dump(compact(result)) + "\n", encoding="utf-8")
    mpath.write_text(render_markdown(result), encoding="utf-8")
    return jpath, mpath


def _write_trec(result: dict, folder: Path, name: str) -> None:
    """One TREC run file per run and the qrels they were scored against (eval.compare reads them)."""
    from eval.compare import write_trec_qrels, write_trec_run

    for run_name, r in _runs(result).items():
        if "_ranked" in r:
            tag = re.sub(r"[^\w.-]+", "-", f"{name}.{run_name}")
            write_trec_run(folder / f"{tag}.trec", r["_ranked"], tag)
            qrels = r["_qrels"]
    if any("_ranked" in r for r in _runs(result).values()):
        write_trec_qrels(folder / f"{name}.qrels", qrels)


def _without_private(result: dict) -> dict:
    """The result without the keys that start with ``_`` (run data written to the TREC files)."""
    def strip(r: dict) -> dict:
        return {k: v for k, v in r.items() if not k.startswith("_")}

    if "runs" in result:
        return {**strip(result), "runs": {n: strip(r) for n, r in result["runs"].items()}}
    return strip(result)
