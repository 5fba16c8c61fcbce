"""Whole sections in Label Studio: ingest a mosaic as tile tasks, annotate, stitch back (real servers)."""

from __future__ import annotations

import json

import imagecodecs
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from active_learning.sections.ingest import ingest_mosaic, make_target
from active_learning.sections.stitch import Stitcher
from label_config.catalogue import IGNORE_INDEX, load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.brush import mask_to_rle
from ml_backend.mosaic.reader import MosaicReader
from ml_backend.mosaic.synthetic import write_synthetic_mosaic
from scraiber.cli import main
from scraiber.settings import Settings

CATALOGUE = load_catalogue()
WIDTH, HEIGHT, TILE, OVERLAP = 600, 500, 256, 32


@pytest.fixture(scope="module")
def section(tmp_path_factory: pytest.TempPathFactory):
    """A 600 x 500 px synthetic 16-bit mosaic, its true classes and its pixel size."""
    folder = tmp_path_factory.mktemp("section")
    path, truth = folder / "section.tif", folder / "truth.tif"
    pixel_size = write_synthetic_mosaic(path, (HEIGHT, WIDTH), tile=256, seed=11, truth_path=truth)
    return path, tifffile.imread(truth), pixel_size


def _project(client, title: str) -> int:
    return client.create_project(title, (CONFIG_DIR / "minerals.xml").read_text())["id"]


def _brush(classes: np.ndarray, origin: str = "manual") -> list[dict]:
    """Brush regions of a class map (one per class present, 255 left unpainted)."""
    height, width = classes.shape
    return [
        {
            "from_name": "minerals",
            "to_name": "image",
            "type": "brushlabels",
            "origin": origin,
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {"format": "rle", "rle": mask_to_rle(classes == index), "brushlabels": [CATALOGUE.names[index]]},
        }
        for index in np.unique(classes)
        if index != IGNORE_INDEX
    ]


def _tasks_by_position(client, project_id: int) -> dict[tuple[int, int], dict]:
    return {(t["data"]["tile"]["y"], t["data"]["tile"]["x"]): t for t in client.list_tasks(project_id)}


@pytest.mark.slow
def test_upload_ingest_and_stitch_round_trip(label_studio, section, tmp_path):
    path, truth, pixel_size = section
    client = label_studio.client
    project_id = _project(client, "Whole section upload")
    target = make_target("upload", Settings())
    try:
        with MosaicReader(path) as reader:
            result = ingest_mosaic(reader, client, project_id, target, CATALOGUE, TILE, OVERLAP)
    finally:
        target.close()
    assert len(result.task_ids) == 9  # 3 rows x 3 columns of 256 px, the last ones aligned with the edge
    tasks = _tasks_by_position(client, project_id)
    assert sorted(tasks) == [(y, x) for y in (0, 224, 244) for x in (0, 224, 344)]
    data = tasks[(244, 344)]["data"]
    assert data["tile"] == {"x": 344, "y": 244, "width": 256, "height": 256, "overlap": 32, "row": 2, "col": 2}
    assert data["pixel_size_um"] == pytest.approx(pixel_size)
    assert (
        data["mosaic"]["name"] == "section.tif"
        and data["mosaic"]["width"] == WIDTH
        and len(data["mosaic"]["sha256"]) == 64
    )
    assert data["image"].startswith("/data/upload/")
    png = imagecodecs.png_decode(client.download(data["image"], max_bytes=2**22))
    assert png.dtype == np.uint16  # 16-bit tiles stay 16-bit
    np.testing.assert_array_equal(png, tifffile.imread(path)[244:500, 344:600])

    # annotate every tile but the top-left one with its true classes; predict wrong classes everywhere
    for (y, x), task in tasks.items():
        window = truth[y : y + TILE, x : x + TILE]
        client.create_prediction(task["id"], _brush(np.full_like(window, 5), "prediction"), 0.5, "test")
        if (y, x) != (0, 0):
            client.create_annotation(task["id"], _brush(window), lead_time=1.0)

    stitched, side = Stitcher(client, project_id, CATALOGUE, "annotations").write(tmp_path / "annotations.tif")
    mask = tifffile.imread(stitched)
    covered = np.zeros(truth.shape, bool)
    for y, x in tasks:
        if (y, x) != (0, 0):
            covered[y : y + TILE, x : x + TILE] = True
    np.testing.assert_array_equal(mask[covered], truth[covered])
    assert (~covered).sum() == 224 * 224 and (mask[~covered] == IGNORE_INDEX).all()
    sidecar = json.loads(side.read_text())
    assert (
        sidecar["stitched_from"] == "annotations"
        and sidecar["pixel_size_um"] == pytest.approx(pixel_size)
        and sidecar["shape"] == [HEIGHT, WIDTH]
    )

    both = tifffile.imread(Stitcher(client, project_id, CATALOGUE, "both").write(tmp_path / "both.tif")[0])
    np.testing.assert_array_equal(both[covered], truth[covered])  # annotations beat predictions in overlaps
    assert (both[~covered] == 5).all()  # the top-left tile's own pixels come from its prediction

    runner = CliRunner()
    settings = Settings(label_studio_url=label_studio.url, label_studio_api_key=label_studio.api_key)
    out = tmp_path / "cli.tif"
    answer = runner.invoke(
        main, ["stitch", "--project", str(project_id), "--out", str(out)], obj={"settings": settings}
    )
    assert answer.exit_code == 0, answer.output
    assert "8 of 9 tiles labelled" in answer.output
    np.testing.assert_array_equal(tifffile.imread(out), mask)


@pytest.mark.slow
def test_local_files_ingest_serves_tiles_through_label_studio(label_studio, section):
    path, _, _ = section
    client = label_studio.client
    project_id = _project(client, "Whole section local files")
    settings = Settings(local_files_document_root=label_studio.local_files_root)
    for _ in range(2):  # a second ingest reuses the storage connected by the first
        with MosaicReader(path) as reader:
            ingest_mosaic(reader, client, project_id, make_target("local-files", settings), CATALOGUE, TILE, OVERLAP)
    assert len(client.local_storages(project_id)) == 1
    tasks = _tasks_by_position(client, project_id)
    url = tasks[(0, 224)]["data"]["image"]
    assert url.startswith("/data/local-files/?d=scraiber-sections/section-")
    tile = imagecodecs.png_decode(client.download(url, max_bytes=2**22))
    np.testing.assert_array_equal(tile, tifffile.imread(path)[0:256, 224:480])


@pytest.mark.slow
def test_s3_ingest_puts_tiles_in_the_bucket(label_studio, s3_server, section):
    path, _, _ = section
    client = label_studio.client
    project_id = _project(client, "Whole section S3")
    bucket = s3_server.make_bucket("scraiber-tiles")
    settings = Settings(
        s3_endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key_id,
        aws_secret_access_key=s3_server.secret_access_key,
        aws_region=s3_server.region,
    )
    with MosaicReader(path) as reader:
        target = make_target("s3", settings, s3_uri=f"s3://{bucket}/sections")
        result = ingest_mosaic(reader, client, project_id, target, CATALOGUE, TILE, OVERLAP)
    task = client.get_task(result.task_ids[0])
    url = task["data"]["image"]
    assert url.startswith(f"s3://{bucket}/sections/section-") and task["data"]["tile"]["x"] == 0
    key = url.removeprefix(f"s3://{bucket}/")
    body = s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    np.testing.assert_array_equal(imagecodecs.png_decode(body), tifffile.imread(path)[0:256, 0:256])


@pytest.mark.slow
def test_ingest_command_bad_inputs_give_one_line(label_studio, section, tmp_path):
    path, _, _ = section
    settings = Settings(label_studio_url=label_studio.url, label_studio_api_key=label_studio.api_key)
    (tmp_path / "notes.tif").write_text("not an image")
    project_id = _project(label_studio.client, "Whole section errors")
    runner = CliRunner()
    cases = [
        ([str(path), "--project", "999999"], "Label Studio project 999999 not found"),
        ([str(tmp_path / "notes.tif"), "--project", str(project_id)], "notes.tif: not a TIFF file"),
        ([str(path), "--project", str(project_id), "--tile", "64", "--overlap", "64"], "--overlap must satisfy"),
        ([str(path), "--project", str(project_id), "--storage", "s3"], "--s3-uri s3://BUCKET/PREFIX"),
        (["--project", "999999", "--out", str(tmp_path / "m.tif")], "project 999999 not found"),
    ]
    for args, message in cases:
        command = ["stitch"] if "--out" in args else ["ingest"]
        answer = runner.invoke(main, command + args, obj={"settings": settings})
        assert answer.exit_code == 1, answer.output
        last = answer.output.strip().splitlines()[-1]
        assert last.startswith("scraiber: error:") and message in last, answer.output
    assert label_studio.client.list_tasks(project_id) == []
