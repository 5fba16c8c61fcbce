"""`scraiber bench interactive` runs end to end with the refiner's image-source interface (it once lacked ``open``)."""

from __future__ import annotations

import re

from click.testing import CliRunner

from benchmarks.interactive import bench_interactive


def test_interactive_bench_prints_latency_and_the_iou_after_each_click():
    result = CliRunner().invoke(bench_interactive, ["--sizes", "128", "--clicks", "2"])
    assert result.exit_code == 0, result.output
    line = re.search(
        r"128 px, unsupervised-\w+: cold (\d+) ms .* mean IoU ([\d.]+) -> ([\d.]+) \(([\d. ]+)\)", result.output
    )
    assert line is not None, result.output
    ious = [float(v) for v in line.group(4).split()]
    assert len(ious) == 3 and all(0.0 <= v <= 1.0 for v in ious) and ious[-1] == float(line.group(3))
