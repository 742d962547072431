"""The Markdown tables ``bench_pipeline.py`` prints from its rows (kept apart so that each file stays small)."""

from __future__ import annotations

import statistics

STAGES = ("probe", "decode", "decode_wait", "detect", "crop", "network")
RATIO_TARGET = 1.3  # issue 11: whole-video default analysis at most 1.3x decoding every frame of the clip once


def fmt(seconds: float) -> str:
    return f"{seconds:.2f}"


def _spread(values: list[float]) -> str:
    """`` (low-high)`` of repeated measurements, shown beside their median; nothing for fewer than three."""
    return f" ({fmt(min(values))}-{fmt(max(values))})" if len(values) >= 3 else ""


def render_decode_ratio(rows: list[dict]) -> str:
    """Issue 11: whole-video analysis (warm) / decoding every frame of the clip once with PyAV, from one process;
    medians, with the range of repeated runs in brackets."""
    lines = [
        "| clip | N | mode | model | whole video, warm | its CPU seconds | decode every frame: PyAV default "
        f"| frame threads | ratio (target {RATIO_TARGET}x) | ratio to frame-threaded decoding | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        decode_all = row.get("decode_all", {})
        if not decode_all.get("default"):
            continue
        plain = statistics.median(decode_all["default"])
        threaded = statistics.median(decode_all["frame threads"])
        total = row["warm"]["total"]
        lines.append(
            f"| {row['clip']} | {row['length']} | {row['mode']} | {row.get('model', 'random ResNeXt50')} | "
            f"**{fmt(total)}**{_spread(row.get('warm_runs', []))} | {fmt(row['warm_cpu'])} | "
            f"{fmt(plain)}{_spread(decode_all['default'])} | {fmt(threaded)}{_spread(decode_all['frame threads'])} | "
            f"**{total / plain:.2f}x** | {total / threaded:.2f}x | {row['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def render_model_ratios(rows: list[dict]) -> str:
    """Random ResNeXt50 seconds / default MobileNetV2 seconds, per clip, length and mode, from one run."""
    lines = [
        "| clip | N | mode | default MobileNetV2, warm | random ResNeXt50, warm | ratio | network stage ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    by_key = {(r["clip"], r["length"], r["mode"], r["model"]): r for r in rows}
    for (clip, length, mode, model), light in by_key.items():
        if model != "default MobileNetV2":
            continue
        heavy = by_key[(clip, length, mode, "random ResNeXt50")]
        light_net, heavy_net = light["warm"].get("network", 0.0), heavy["warm"].get("network", 0.0)
        lines.append(
            f"| {clip} | {length} | {mode} | {fmt(light['warm']['total'])} | {fmt(heavy['warm']['total'])} | "
            f"{heavy['warm']['total'] / light['warm']['total']:.2f}x | "
            + (f"{heavy_net / light_net:.1f}x |" if light_net else "n/a |")
        )
    return "\n".join(lines)


def render(rows: list[dict], baselines: list[dict], machine: str) -> str:
    lines = [f"Machine: {machine}. Seconds; peak memory of the whole process.", ""]
    lines.append(
        "| clip | N | mode | "
        + ("model | " if any("model" in row for row in rows) else "")
        + "windows (scored) | frames | "
        + " | ".join(STAGES)
        + " | end to end, warm | first analysis "
        "| + checkpoint load | process wall | peak RSS MB |"
    )
    lines.append("|" + "---|" * (11 + len(STAGES) - 1 + any("model" in row for row in rows)))
    for row in rows:
        warm = row["warm"]
        lines.append(
            f"| {row['clip']} | {row['length']} | {row['mode']} | "
            + (f"{row['model']} | " if "model" in row else "")
            + f"{row['windows']} ({row['windows_scored']}) | "
            f"{row['frames_analysed']} | "
            + " | ".join(fmt(warm.get(stage, 0.0)) for stage in STAGES)
            + f" | **{fmt(warm['total'])}** | {fmt(row['first']['total'])} | {fmt(row['checkpoint_load'])} | "
            f"{fmt(row['process_wall'])} | {row['peak_rss_mb']:.0f} |"
        )
    if baselines:
        lines += [
            "",
            "Original app's pipeline on the same machine, same run (first N frames, model loaded per request):",
            "",
        ]
        lines.append(
            "| clip | N | original end to end | its decode / detect / model load / network | original peak RSS MB "
            "| ours, one window (warm / first + load) | ratio | ours, whole video (warm) | ratio |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for base in baselines:
            ours = {
                r["mode"]: r
                for r in rows
                if (r["clip"], r["length"]) == (base["clip"], base["length"]) and "MobileNet" not in r.get("model", "")
            }
            one, whole = ours["one window"], ours["whole video"]
            first_plus_load = one["first"]["total"] + one["checkpoint_load"]
            t = base["timings"]
            lines.append(
                f"| {base['clip']} | {base['length']} | **{fmt(t['total'])}** | "
                f"{fmt(t['decode'])} / {fmt(t['detect'])} / {fmt(t['model_load'])} / {fmt(t['network'])} | "
                f"{base['peak_rss_mb']:.0f} | "
                f"{fmt(one['warm']['total'])} / {fmt(first_plus_load)} | "
                f"{t['total'] / one['warm']['total']:.1f}x / {t['total'] / first_plus_load:.1f}x | "
                f"{fmt(whole['warm']['total'])} | {t['total'] / whole['warm']['total']:.1f}x |"
            )
    return "\n".join(lines)
