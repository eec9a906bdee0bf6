"""The real ModelScope client, exercised up to the network boundary.

No hub is reachable from here, so one test checks the offline failure, and the
other puts a local stand-in for the hub's file endpoint at the boundary and
lets ModelScope's own client download through it.
"""

import http.server
import threading
import time

import pytest
from click.testing import CliRunner

from converters.download import DownloadError, download, remote_file
from medfactory.cli import cli


def test_offline_fails_within_seconds_and_says_what_to_do(tmp_path):
    started = time.monotonic()
    result = CliRunner().invoke(
        cli,
        ["data", "download", "medical-o1", "--subset", "zh", "--dest", str(tmp_path),
         "--endpoint", "https://modelscope.invalid"],
    )  # fmt: skip
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert "no network route to ModelScope" in result.output
    assert "medical_o1_sft_Chinese.json" in result.output
    assert "medfactory data convert medical-o1" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("source", "subset", "expected"),
    [
        ("huatuo", None, ("xiaofengalg/HuatuoGPT-sft-data-v1", "HuatuoGPT_sft_data_v1.jsonl")),
        ("medical-o1", None, ("AI-ModelScope/medical-o1-reasoning-SFT", "medical_o1_sft.json")),
        (
            "medical-o1",
            "mix_zh",
            ("AI-ModelScope/medical-o1-reasoning-SFT", "medical_o1_sft_mix_Chinese.json"),
        ),
    ],
)
def test_remote_files(source, subset, expected):
    assert remote_file(source, subset) == expected


def test_unknown_subset_lists_the_known_ones():
    with pytest.raises(ValueError, match="no subset 'fr'; known: en, zh, mix, mix_zh"):
        remote_file("medical-o1", "fr")


class StandIn(http.server.BaseHTTPRequestHandler):
    """Answers ModelScope's file endpoint with a body; records what was asked."""

    body = b""
    paths: list = []

    def do_GET(self):
        type(self).paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_modelscope_client_downloads_through_the_boundary(tmp_path, fixtures_dir):
    StandIn.body = (fixtures_dir / "medical_o1" / "medical_o1_sft_en_first2.json").read_bytes()
    StandIn.paths = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = download(
            "medical-o1", "en", tmp_path, endpoint=f"http://127.0.0.1:{server.server_port}"
        )
    finally:
        server.shutdown()
    assert path == tmp_path / "medical_o1_sft.json"
    assert path.read_bytes() == StandIn.body
    assert any(
        p.startswith("/api/v1/datasets/AI-ModelScope/medical-o1-reasoning-SFT/repo")
        and "FilePath=medical_o1_sft.json" in p
        for p in StandIn.paths
    ), StandIn.paths


def test_hub_error_is_reported_with_the_way_out(tmp_path):
    class Refuses(StandIn):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(
            DownloadError, match="download of .*medical_o1_sft.json failed.*convert"
        ):
            download(
                "medical-o1", "en", tmp_path, endpoint=f"http://127.0.0.1:{server.server_port}"
            )
    finally:
        server.shutdown()
