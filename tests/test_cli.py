"""CLI: the main job on real input, and user errors as one line with exit status 2."""

from __future__ import annotations

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from bridge.cli import main


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_run_writes_every_frame_as_rgba_png(carphone, tmp_path, capsys):
    out = tmp_path / "frames"
    code = main(["run", "--source", f"video:{carphone}", "--sink", f"images:{out}", "--max-frames", "12", "--stats-every", "0", "--no-osc"])
    assert code == 0
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"frame_{i:06d}.png" for i in range(12)]
    image = cv2.imread(str(files[5]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (144, 176, 4)
    alpha = image[..., 3]
    assert 0.2 < (alpha > 127).mean() < 0.9  # a person, not the whole frame and not nothing
    assert "12 frames" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--source", "video:/no/such.mp4", "--sink", "null:"], "no file '/no/such.mp4'"),
        (["run", "--source", "webcam:0", "--sink", "null:"], "unknown source scheme 'webcam:'"),
        (["run", "--source", "video:x.mp4", "--sink", "tape:out"], "unknown sink scheme 'tape:'"),
        (["run", "--source", "clip.mp4", "--sink", "null:"], "expected SCHEME:TARGET"),
        (["run", "--source", "images:/nope", "--sink", "null:", "--preset", "../etc"], "bad preset name"),
        (["run", "--source", "images:/nope", "--sink", "null:", "--preset", "nosuch"], "no preset 'nosuch'"),
        (["run", "--source", "images:/nope", "--sink", "null:"], "no folder '/nope'"),
        (["presets", "show", "nosuch"], "no preset 'nosuch'"),
        (["run", "--sink", "null:"], "--source"),
        (["run", "--source", "camera:abc", "--sink", "null:"], "neither a camera index"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # and no runtime log line around it
    assert lines[0].startswith("avatar-bridge: ") and message in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "source, sink, message",
    [
        ("camera:abc", "null:", "'abc' is neither a camera index (camera:0 is the first camera) nor a device path"),
        ("video:notvideo.mp4", "null:", "cannot read 'notvideo.mp4'"),
        ("video:truncated.mp4", "null:", "cannot read 'truncated.mp4'"),
        ("images:empty", "null:", "no images"),
        ("video:{carphone}", "movie:out.avi", "unknown extension '.avi'"),
        ("video:{carphone}", "images:/proc/no/such/folder", "choose a writable folder"),
    ],
)
def test_bad_inputs_a_user_tries_exit_2_with_one_line(source, sink, message, carphone, tmp_path):
    (tmp_path / "notvideo.mp4").write_text("not a video\n")  # a text file named .mp4
    (tmp_path / "truncated.mp4").write_bytes(carphone.read_bytes()[:20_000])  # a download cut short
    (tmp_path / "empty").mkdir()
    result = run_cli("run", "--source", source.format(carphone=carphone), "--sink", sink, "--no-osc", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avatar-bridge: ") and message in lines[0], result.stderr
    assert not list((tmp_path / "empty").iterdir())


#: Lines the inference runtime prints when it is not silenced (LiteRT/TFLite, absl, glog).
RUNTIME_LINE = re.compile(r"XNNPACK|Created TensorFlow Lite|absl|^[IWEF]\d{4} \d|^(INFO|WARNING): ", re.MULTILINE)


@pytest.mark.parametrize("command", ["run", "demo", "doctor"])
def test_default_output_has_no_runtime_log_lines(command, carphone, tmp_path):
    args = {"run": ["run", "--source", f"video:{carphone}", "--sink", "null:", "--max-frames", "3", "--no-osc", "--stats-every", "0"],
            "demo": ["demo", "--out", str(tmp_path / "demo")],
            "doctor": ["doctor"]}[command]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr  # doctor exits 1 when a required part is missing
    assert not RUNTIME_LINE.search(result.stderr + result.stdout), result.stderr
    if command == "demo":
        assert len(list((tmp_path / "demo").glob("frame_*.png"))) == 120


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_shows_the_runtime_log_lines(where, carphone, tmp_path):
    run = ["run", "--source", f"video:{carphone}", "--sink", "null:", "--max-frames", "3", "--no-osc", "--stats-every", "0"]
    result = run_cli(*(["--verbose", *run] if where == "before" else [*run, "--verbose"]), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # LiteRT announces its CPU delegate when the person-alpha model loads; quiet runs hide it
    assert "XNNPACK delegate" in result.stderr
    assert "3 frames" in result.stdout


def test_bad_preset_file_names_the_field(tmp_path, monkeypatch, capsys):
    (tmp_path / "bad.yaml").write_text("stages:\n  - stage: alpha\n    params: {threshold: 2}\n")
    monkeypatch.setenv("AVATAR_BRIDGE_PRESETS", str(tmp_path))
    assert main(["presets", "show", "bad"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "threshold" in err


def test_images_source_to_images_sink(camera_png, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    image = cv2.imread(str(camera_png))
    for i in range(3):
        cv2.imwrite(str(src / f"still_{i}.png"), np.roll(image, i * 10, axis=1))
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    assert main(["run", "--source", f"images:{src}", "--sink", f"images:{out}", "--stats-every", "0", "--no-osc"]) == 0
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    assert cv2.imread(str(out / written[0]), cv2.IMREAD_UNCHANGED).shape == (512, 512, 4)


def test_presets_list_and_show(capsys):
    assert main(["presets", "list"]) == 0
    assert "default" in capsys.readouterr().out
    assert main(["presets", "show", "default"]) == 0
    shown = capsys.readouterr().out
    assert "person-alpha" in shown and "threshold" in shown and "refine_radius" in shown


def test_doctor_reports_each_part(capsys):
    main(["doctor"])
    out = capsys.readouterr().out
    for part in ("torch", "person-alpha", "video:", "spout:", "ndi:"):
        assert part in out
