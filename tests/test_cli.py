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
        (["demo", "--backend", "tensorflow"], "--backend"),
        (["schedule", "no_such_schedule"], "no_such_schedule"),
        (["schedule", "cosine", "--format", "xml"], "xml"),
        (["check", "no/such/file.npy"], "does not exist"),
        (["check", "{text}"], "must end in .npy, .csv or .json"),
        (["check", "{fake_npy}"], "not a .npy file"),
        (["check", "{broken_json}"], "cannot read"),
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
    }
    files["text"].write_text("not a photograph\n")
    files["fake_npy"].write_text("not numpy\n")
    files["broken_json"].write_text("[0.1, 0.2,")
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
