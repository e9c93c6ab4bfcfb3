"""The ``diffcore`` command: demo files, exit codes, one-line errors, no pickle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

click_testing = pytest.importorskip("click.testing", reason="needs the cli extra")
Image = pytest.importorskip("PIL.Image", reason="needs the cli extra (Pillow)")
pytest.importorskip("matplotlib", reason="needs the cli extra (matplotlib)")

from diffcore._cli import main  # noqa: E402

DEMO_FILES = (
    "forward_process.png",
    "schedules.png",
    "reverse_given_x0.png",
    "samples.png",
    "checks.txt",
)
SMALL = ["--steps", "12", "--max-side", "24"]


def run(*args: str) -> click_testing.Result:
    return click_testing.CliRunner().invoke(main, list(args))


def assert_one_line_error(result: click_testing.Result, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("diffcore") and ": error: " in lines[0]
    assert "Traceback" not in result.output


def test_no_command_prints_the_help() -> None:
    # It printed the whole help squeezed onto one error line, exit 2.
    result = run()
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: diffcore")
    assert result.stdout == run("--help").stdout


def write_jpeg(path: Path, width: int = 300, height: int = 200) -> Path:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
    pixels = np.clip(ramp + rng.normal(0, 20, ramp.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")
    return path


class LeavesAMark:
    """Unpickling this creates a file: proof that a pickle was (not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


# -- demo ------------------------------------------------------------------


def test_demo_writes_every_file_from_the_bundled_photo(tmp_path: Path) -> None:
    result = run("demo", "--out", str(tmp_path / "out"), *SMALL)

    assert result.exit_code == 0, result.output
    assert "grace_hopper.jpg" in result.stdout
    for name in DEMO_FILES:
        path = tmp_path / "out" / name
        assert path.stat().st_size > 0
        assert f"wrote {path}" in result.stdout
    assert "NO" not in (tmp_path / "out" / "checks.txt").read_text()


def test_demo_reads_a_users_jpeg_and_shrinks_it(tmp_path: Path) -> None:
    photo = write_jpeg(tmp_path / "mine.jpg")
    result = run("demo", "--image", str(photo), "--out", str(tmp_path), *SMALL)

    assert result.exit_code == 0, result.output
    assert "mine.jpg -> 24 x 16 pixels" in result.stdout
    with Image.open(tmp_path / "forward_process.png") as figure:
        assert figure.format == "PNG"


def test_demo_runs_on_torch(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="PyTorch is not installed")
    result = run("demo", "--backend", "torch", "--out", str(tmp_path), *SMALL)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["demo", "--image", "no/such/photo.jpg"], "does not exist"),
        (["demo", "--image", "{text}"], "cannot read the image"),
        (["demo", "--out", "{text}"], "is a file"),
        (["demo", "--out", "{text}/sub"], "cannot create the output folder"),
        (["demo", "--steps", "3"], "--steps"),
        (["demo", "--steps", "1000001"], "--steps"),
        (["demo", "--seed", "-1"], "--seed"),
        (["demo", "--seed", str(2**63 - 2)], "--seed"),
        (["demo", "--seed", "99999999999999999999999"], "--seed"),
        (["demo", "--max-side", "4"], "--max-side"),
        (["demo", "--out", "{text}/sub/deeper"], "cannot create the output folder"),
        (["schedule", "linear", "--steps", "0"], "--steps"),
        (["schedule", "linear", "-T", "100000000000"], "--steps"),
        (["schedule", "linear", "--rows", "-1"], "--rows"),
        (["demo", "--backend", "tensorflow"], "--backend"),
        (["schedule", "no_such_schedule"], "no_such_schedule"),
        (["schedule", "cosine", "--format", "xml"], "xml"),
        (["check", "no/such/file.npy"], "does not exist"),
        (["check", "{text}"], "must end in .npy, .csv or .json"),
        (["check", "{fake_npy}"], "not a .npy file"),
        (["check", "{broken_json}"], "cannot read"),
        (["check", "{deep_json}"], "cannot read"),
        (["nonsense"], "nonsense"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    files = {
        "text": tmp_path / "notes.txt",
        "fake_npy": tmp_path / "fake.npy",
        "broken_json": tmp_path / "broken.json",
        "deep_json": tmp_path / "deep.json",
    }
    files["text"].write_text("not a photograph\n")
    files["fake_npy"].write_text("not numpy\n")
    files["broken_json"].write_text("[0.1, 0.2,")
    files["deep_json"].write_text("[" * 100_000 + "]" * 100_000)
    filled = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]

    result = run(*filled)

    assert_one_line_error(result)
    assert needle in result.stderr


def test_missing_backend_library_is_a_usage_error(tmp_path: Path) -> None:
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed here")
    result = run("demo", "--backend", "cupy", "--out", str(tmp_path))
    assert_one_line_error(result)
    assert "needs CuPy" in result.stderr


def test_every_integer_option_has_a_range() -> None:
    # A bare int lets -1 or 10**11 through to NumPy, which fails with a traceback.
    import click

    unbounded = [
        f"{name} {option.opts[0]}"
        for name, command in main.commands.items()
        for option in command.params
        if isinstance(option.type, click.types.IntParamType)
        and not isinstance(option.type, click.IntRange)
    ]
    assert unbounded == []


def test_demo_refuses_an_unwritable_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root may write anywhere, so the permission is taken away by a stand-in.
    import os

    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.W_OK)
    result = run("demo", "--out", str(tmp_path), *SMALL)

    assert_one_line_error(result)
    assert "cannot write into the output folder" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", [[], ["demo"], ["schedule"], ["check"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")


# -- schedule ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["linear", "scaled-linear", "cosine", "sigmoid_betas"])
def test_schedule_csv_has_one_row_per_step(name: str) -> None:
    result = run("schedule", name, "--steps", "7", "--format", "csv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("t,betas,alphas_cumprod")
    assert len(lines) == 8


def test_schedule_json_writes_infinities_as_strings() -> None:
    result = run(
        "schedule", "cosine", "-T", "4", "--zero-terminal-snr", "--format", "json"
    )
    document = json.loads(result.stdout)
    assert document["log_snr"][-1] == "-inf"
    assert document["alphas_cumprod"][-1] == 0


def test_schedule_help_lists_every_name() -> None:
    from diffcore._cli._schedules import SCHEDULES

    result = run("schedule", "--help")
    text = " ".join(result.stdout.split())
    for name in SCHEDULES:
        assert name in text


@pytest.mark.parametrize(
    ("where", "needle"),
    [
        ("plot.txt", "must end in .png, .pdf or .svg"),
        ("plot", "must end in .png, .pdf or .svg"),
        ("no/such/folder/plot.png", "does not exist"),
        ("notes.txt/plot.png", "is a file, not a folder"),
    ],
)
def test_schedule_plot_path_is_checked_before_any_output(
    tmp_path: Path, where: str, needle: str
) -> None:
    (tmp_path / "notes.txt").write_text("a file\n")
    result = run("schedule", "linear", "--plot", str(tmp_path / where))

    assert_one_line_error(result)
    assert needle in result.stderr
    assert result.stdout == ""


def test_schedule_plot(tmp_path: Path) -> None:
    result = run("schedule", "linear", "--plot", str(tmp_path / "linear.png"))
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "linear.png") as figure:
        assert figure.format == "PNG"


# -- check -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_check_accepts_what_schedule_writes(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"cosine.{fmt}"
    path.write_text(run("schedule", "cosine", "--format", fmt).stdout)

    result = run("check", str(path))

    assert result.exit_code == 0, result.output
    assert "values read as betas" in result.stdout
    assert "result: ok" in result.stdout


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a,b\n0.1,0.2\n", "has 2 columns"),
        ("0.1,0.2\n0.3,0.4\n", "has 2 columns"),
        ("t,x,y\n0,0.1,0.2\n1,0.2,0.3\n", "has 3 columns"),
        ("0.1\n0.2,0.3\n", "row 2 has 2 cells; row 1 has 1"),
        ("t,betas\n0,0.1\n1\n", "row 3 has 1 cell; row 1 has 2"),
        ("0.1;0.2\n", "must hold numbers separated by commas; row 1 is '0.1;0.2'"),
        ("betas\n", "has a header (betas) and no values below it"),
        ("t,alphas_cumprod\n\n", "has a header (t,alphas_cumprod) and no values"),
    ],
)
def test_check_refuses_a_csv_without_one_column(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "table.csv"
    path.write_text(text)

    result = run("check", str(path))

    assert_one_line_error(result)
    assert f"{path} {needle}" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("text", "kind", "first"),
    [
        ("t,alphas_cumprod\n0,0.9\n1,0.5\n", "auto", "0.9 at t = 0"),
        ("t,betas,alphas_cumprod\n0,0.1,0.9\n1,0.2,0.72\n", "auto", "0.9 at t = 0"),
        ("betas,alphas_cumprod\n0.2,0.5\n0.3,0.25\n", "alphas_cumprod", "0.5 at"),
    ],
)
def test_check_reads_the_named_csv_column(
    tmp_path: Path, text: str, kind: str, first: str
) -> None:
    path = tmp_path / "table.csv"
    path.write_text(text)

    result = run("check", "--kind", kind, str(path))

    assert result.exit_code == 0, result.output
    assert f"alphas_cumprod: {first}" in result.stdout


def test_check_refuses_booleans_in_json(tmp_path: Path) -> None:
    path = tmp_path / "betas.json"
    path.write_text('{"betas": [0.1, true]}')
    assert_one_line_error(run("check", str(path)))


@pytest.mark.parametrize("text", ['[0.1, "0.2"]', '{"betas": ["0.1"]}'])
def test_check_refuses_strings_in_json(tmp_path: Path, text: str) -> None:
    path = tmp_path / "betas.json"
    path.write_text(text)
    result = run("check", str(path))
    assert_one_line_error(result)
    assert "must hold JSON numbers only" in result.stderr


def test_check_report_for_one_value_reads_well(tmp_path: Path) -> None:
    path = tmp_path / "betas.csv"
    path.write_text("betas\n0.1\n")

    result = run("check", str(path))

    assert result.exit_code == 0, result.output
    assert "(1 value read as betas)" in result.stdout
    assert "alphas_cumprod: 0.9 at t = 0\n" in result.stdout


def test_check_reports_snr_and_prior_kl(tmp_path: Path) -> None:
    path = tmp_path / "alphas_cumprod.npy"
    np.save(path, np.array([0.9, 0.5, 0.25]))

    result = run("check", str(path))

    assert result.exit_code == 0, result.output
    assert "read as alphas_cumprod" in result.stdout
    assert "terminal SNR: 0.3333" in result.stdout
    # KL(N(sqrt(a) x_0, 1 - a) || N(0, 1)) with E[x_0^2] = 1/3, a = 1/4.
    nats = 0.5 * (0.25 / 3 + 0.75 - 1 - np.log(0.75))
    assert f"prior KL: {nats / np.log(2):.4g} bits/dim" in result.stdout


@pytest.mark.parametrize(
    ("betas", "needle"),
    [
        ([0.1, 1.5, 0.2], "valid schedule: no"),
        ([0.1, float("nan")], "valid schedule: no"),
        (np.linspace(1e-9, 0.02, 100), "float32: alphas_cumprod rounds to exactly 1"),
        (np.linspace(1e-6, 0.02, 100), "float32: 1 - alphas_cumprod"),
    ],
)
def test_check_fails_with_exit_1(tmp_path: Path, betas: object, needle: str) -> None:
    path = tmp_path / "betas.json"
    path.write_text(json.dumps({"betas": [float(b) for b in np.asarray(betas)]}))

    result = run("check", str(path))

    assert result.exit_code == 1, result.output
    assert needle in result.stdout
    assert "result: FAILED" in result.stdout


def test_check_never_unpickles(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([LeavesAMark(marker)], dtype=object), allow_pickle=True)

    result = run("check", str(path))

    assert_one_line_error(result)
    assert "allow_pickle=False" in result.stderr
    assert not marker.exists()


# -- the installed command ---------------------------------------------------


def test_module_entry_point_exits_2_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "diffcore", "check", str(tmp_path / "absent.npy")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1


def test_import_diffcore_loads_no_cli_library() -> None:
    code = (
        "import sys, diffcore, diffcore.reference\n"
        "heavy = {'click', 'tqdm', 'matplotlib', 'PIL'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


# -- a fresh user's trial: flat images, typed option names, odd folders -------


def test_demo_refuses_an_image_of_one_flat_colour(tmp_path: Path) -> None:
    image = tmp_path / "grey.png"
    Image.new("L", (40, 30), 128).save(image)
    result = run("demo", "--image", str(image), "--out", str(tmp_path / "o"), *SMALL)

    assert_one_line_error(result)
    assert "'--image'" in result.stderr and "has no variation" in result.stderr
    assert "every pixel value is 128" in result.stderr
    assert not (tmp_path / "o").exists()


def test_schedule_reports_an_unknown_option_as_typed() -> None:
    result = run("schedule", "linear", "--scale-by-T")

    assert_one_line_error(result)
    assert "No such option '--scale-by-T'" in result.stderr


@pytest.mark.parametrize("typed", ["scaled-linear", "sigmoid-alphas-cumprod"])
def test_schedule_names_still_take_hyphens(typed: str) -> None:
    result = run("schedule", typed, "--steps", "4", "--format", "csv")
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_schedule_plot_into_proc_fails_before_any_output() -> None:
    result = run("schedule", "linear", "--plot", "/proc/diffcore-plot.png")

    assert_one_line_error(result)
    assert "cannot be written" in result.stderr
    assert result.stdout == ""


def test_schedule_plot_probe_leaves_no_file_behind(tmp_path: Path) -> None:
    result = run("schedule", "--plot", str(tmp_path / "plot.png"), "nope")

    assert_one_line_error(result)
    assert list(tmp_path.iterdir()) == []


# -- images deeper than 8 bits: scaled by their depth or range, never clipped --


def test_a_16_bit_gradient_spans_the_whole_data_range(tmp_path: Path) -> None:
    from diffcore._cli._images import load_image

    path = tmp_path / "ramp16.png"
    ramp = np.linspace(0, 65535, 64).round().astype(np.uint16)
    Image.fromarray(np.tile(ramp, (32, 1))).save(path)
    x_0 = load_image(path, max_side=64).x_0

    assert x_0.shape == (3, 32, 64)
    assert x_0.min() == pytest.approx(-1.0) and x_0.max() == pytest.approx(1.0)
    assert float(np.mean(x_0 == 1.0)) < 0.05
    assert x_0[0, 0, 32] == pytest.approx(ramp[32] / 65535 * 2 - 1, abs=1e-6)


def test_a_float_tiff_in_the_unit_interval_keeps_its_grey_levels(
    tmp_path: Path,
) -> None:
    from diffcore._cli._images import load_image

    path = tmp_path / "ramp.tif"
    ramp = np.linspace(0.0, 1.0, 48, dtype=np.float32)
    Image.fromarray(np.tile(ramp, (16, 1))).save(path)
    x_0 = load_image(path, max_side=48).x_0

    assert np.unique(x_0).size == 48
    np.testing.assert_allclose(x_0[1, 5], ramp * 2 - 1, atol=1e-6)


def test_a_32_bit_image_above_16_bits_is_scaled_by_its_maximum(
    tmp_path: Path,
) -> None:
    from diffcore._cli._images import load_image

    path = tmp_path / "wide.tif"
    Image.fromarray(
        np.tile(np.arange(0, 400_000, 10_000, dtype=np.int32), (8, 1))
    ).save(path)
    x_0 = load_image(path, max_side=40).x_0

    assert x_0.min() == -1.0 and x_0.max() == 1.0
    assert float(np.mean(x_0 == 1.0)) < 0.05


def test_a_flat_16_bit_image_is_refused_with_its_real_value(tmp_path: Path) -> None:
    image = tmp_path / "flat16.png"
    Image.fromarray(np.full((30, 40), 40000, dtype=np.uint16)).save(image)
    result = run("demo", "--image", str(image), "--out", str(tmp_path / "o"), *SMALL)

    assert_one_line_error(result)
    assert (
        "'--image'" in result.stderr and "every pixel value is 40000" in result.stderr
    )
    assert not (tmp_path / "o").exists()


def test_a_flat_float_image_outside_the_unit_interval_is_refused(
    tmp_path: Path,
) -> None:
    image = tmp_path / "flat.tif"
    Image.fromarray(np.full((30, 40), 3.25, dtype=np.float32)).save(image)
    result = run("demo", "--image", str(image), "--out", str(tmp_path / "o"), *SMALL)

    assert_one_line_error(result)
    assert "every pixel value is 3.25" in result.stderr


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_float_image_with_nan_or_inf_is_a_usage_error(
    tmp_path: Path, bad: float
) -> None:
    image = tmp_path / "bad.tif"
    pixels = np.tile(np.linspace(0.0, 1.0, 40, dtype=np.float32), (30, 1))
    pixels[3, 4] = bad
    Image.fromarray(pixels).save(image)
    result = run("demo", "--image", str(image), "--out", str(tmp_path / "o"), *SMALL)

    assert_one_line_error(result)
    assert "'--image'" in result.stderr and "NaN or infinite" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("size", [(1, 200), (300, 1)], ids=["one row", "one column"])
def test_demo_runs_on_a_strip_one_pixel_wide(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    image = tmp_path / "strip.png"
    Image.fromarray(pixels).save(image)
    out = tmp_path / "out"
    # Longer than SHRUNK_SIDE: the image is averaged down along its one row.
    options = ["--steps", "12", "--max-side", "300"]
    result = run("demo", "--image", str(image), "--out", str(out), *options)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(DEMO_FILES)
