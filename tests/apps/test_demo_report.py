"""pcseg demo writes the evaluation report of its first method and ends by saying where it is."""
import re

from untrained_checkpoints import untrained_checkpoint

from pcseg.apps.demo import run_demo


def test_demo_ends_with_the_report(tmp_path, capsys):
    ckpt = untrained_checkpoint(tmp_path / "model.pt", "bottomup",
                                ["voxel_size=0.1", "widths=[8,16]", "embed_dim=4", "min_size=20"])
    out = tmp_path / "out"
    results = run_demo(None, [f"data_dir={tmp_path / 'data'}", f"out_dir={out}", "scenes=2", f"checkpoint={ckpt}",
                              "methods=[model]"])
    page = out / "report" / "index.html"
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == f"report: {page}"
    text = page.read_text()
    assert f"<td>AP50</td><td>{results['model']['AP50']:.3f}</td>" in text
    assert re.search(r"<td>mIoU \(\d+ classes with GT\)</td><td>\d\.\d{3}</td>", text)  # the model's semantics are scored too
    assert len(re.findall("data:image/png;base64,", text)) == 4  # PR curves, AP chart, best and worst room
    assert "best scene: scene000" in text and "worst scene: scene000" in text
    assert (out / "report" / "report.md").is_file()
