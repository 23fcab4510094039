"""The attribute stage: files per the contract, pages that are valid and self-contained."""

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from atlas.cli import main
from atlas.demo.world import CLASS_NAMES

DEMO_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")


class Collector(HTMLParser):
    """Collects every src/href, and checks tags are balanced (void tags aside)."""

    VOID = frozenset({"img", "meta", "link", "br", "input", "hr"})

    def __init__(self):
        super().__init__()
        self.references, self.stack, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        # A link out (a credit's source) is not a file of the page's; a resource is.
        self.references += [
            v
            for k, v in attrs
            if k in ("src", "href") and v and not (tag == "a" and v.startswith("https://"))
        ]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def check_page(path: Path) -> list[str]:
    parser = Collector()
    text = path.read_text()
    assert text.lstrip().lower().startswith("<!doctype html>")
    parser.feed(text)
    assert not parser.errors and not parser.stack, (path, parser.errors, parser.stack)
    for reference in parser.references:
        if reference.startswith("data:"):
            continue  # inline, e.g. the empty favicon
        assert "://" not in reference and not reference.startswith("/"), reference
        assert (path.parent / reference.split("#")[0]).exists(), (path.name, reference)
    return parser.references


@pytest.fixture(scope="module")
def reports(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    overrides = {
        "model.input_size": "32",
        "model.class_names": f"[{', '.join(sorted(CLASS_NAMES))}]",
        "attribute.per_class": "1",
        "attribute.layers": "[block2]",
        "attribute.ig_steps": "4",
        "attribute.occlusion_window": "8",
    }
    args = ["attribute", "--config", DEMO_CONFIG, "--out", str(out)]
    args += [arg for key, value in overrides.items() for arg in ("-s", f"{key}={value}")]
    args += ["--images", str(tiny_world / "test-swapped"), "--images", str(tiny_world / "test")]
    assert main(args) == 0
    return out


def test_contract_files_for_every_image_and_method(reports, tiny_world):
    pages = sorted(p for p in reports.glob("*.html") if p.name != "index.html")
    assert len(pages) == 12  # 2 classes of test-swapped, 10 of test, one image each
    methods = ("saliency", "guided_backprop", "gradcam", "occlusion", "integrated_gradients")
    for page in pages:
        for method in methods:
            values = np.load(reports / f"{page.stem}.{method}.npy")
            assert values.dtype == np.float32 and values.shape == (32, 32)
    stems = [p.stem for p in pages]
    assert len(set(stems)) == len(stems)  # 000000.png in every class folder: disambiguated


def test_pages_are_valid_and_reference_only_existing_files(reports):
    index_refs = check_page(reports / "index.html")
    assert sum(r.endswith(".html") for r in index_refs) >= 12
    for page in reports.glob("*.html"):
        check_page(page)
    text = next(p for p in reports.glob("*.html") if p.name != "index.html").read_text()
    for phrase in (
        "Cascading randomization",
        "Deletion AUC",
        "scale:",
        "native resolution",
        "block2",
    ):
        assert phrase in text


def test_a_light_report_says_which_checks_it_left_out(tiny_world, tmp_path):
    """Without the randomization check and the deletion curves (the exemplar reports'
    setting), the page shows neither, says so, and the index records them as None."""
    import json

    args = ["attribute", "--config", DEMO_CONFIG, "--out", str(tmp_path), "--methods", "saliency"]
    for key, value in {
        "model.input_size": "32",
        "model.class_names": f"[{', '.join(sorted(CLASS_NAMES))}]",
        "attribute.limit": "1",
        "attribute.layers": "[]",
        "attribute.randomize_methods": "[]",
        "attribute.deletion_steps": "0",
    }.items():
        args += ["-s", f"{key}={value}"]
    assert main([*args, "--images", str(tiny_world / "test")]) == 0
    page = next(p for p in tmp_path.glob("*.html") if p.name != "index.html")
    check_page(page)
    text = page.read_text()
    assert "Cascading randomization" not in text and "Deletion AUC" not in text
    assert (
        "Not computed for this report: the randomization check and the deletion and "
        "insertion curves." in " ".join(text.split())
    )
    trust = json.loads((tmp_path / "reports.json").read_text())[0]["trust"]["saliency"]
    assert trust["deletion"] is None and trust["insertion_curve"] is None


def test_credits_and_the_published_checks_reach_the_pages(tiny_world, tmp_path):
    """Images of a credited folder carry their credit (as text) on their page and the
    index; ``attribute.sanity_photos`` puts the cascade averaged over that many images, with
    its floors, and RISE's AUCs on the index, the numbers in sanity.json."""
    import json
    import shutil

    from atlas.credits import Credit, write_credits

    folder = tmp_path / "photos"
    folder.mkdir()
    names = []
    for k, image in enumerate(sorted((tiny_world / "test").rglob("*.png"))[:3]):
        shutil.copy(image, folder / f"photo{k}.png")
        names.append(f"photo{k}.png")
    credits = [
        (n, Credit(f"Author <{k}>", "CC-BY 4.0", f"https://example.org/{k}"))
        for k, n in enumerate(names)
    ]
    write_credits(folder / "credits.csv", credits)
    out = tmp_path / "out"
    args = ["attribute", "--config", DEMO_CONFIG, "--out", str(out)]
    args += ["--methods", "saliency,gradcam,occlusion"]
    for key, value in {
        "model.input_size": "32",
        "model.class_names": f"[{', '.join(sorted(CLASS_NAMES))}]",
        "attribute.layers": "[]",
        "attribute.randomize_layers": "2",
        "attribute.randomize_methods": "[saliency, gradcam]",
        "attribute.occlusion_window": "8",
        "attribute.deletion_steps": "4",
        "attribute.sanity_photos": "3",
        "attribute.per_class": "null",
    }.items():
        args += ["-s", f"{key}={value}"]
    assert main([*args, "--images", str(folder)]) == 0
    index = (out / "index.html").read_text()
    check_page(out / "index.html")
    assert index.count("Author &lt;") == 3 and "Author <" not in index
    page = (out / "photo1.html").read_text()
    assert "Author &lt;1&gt;, CC-BY 4.0" in page and 'href="https://example.org/1"' in page
    checks = json.loads((out / "sanity.json").read_text())
    assert list(checks["methods"]) == ["saliency", "gradcam"]
    assert list(checks["faithfulness_only"]) == ["occlusion"]
    assert len(checks["photos"]) == 3
    saliency = checks["methods"]["saliency"]
    assert len(saliency["curves"]["spearman_abs"]) == 2
    assert f"{saliency['end']['spearman_abs']:.2f}" in index
    assert 'id="sanity-table"' in index and (out / "sanity.png").exists()


def test_bad_inputs(capsys, tiny_world, tmp_path):
    code = main(
        [
            "attribute",
            "--config",
            DEMO_CONFIG,
            "--methods",
            "saliency,gradcm",
            "--images",
            str(tiny_world / "test"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2 and "unknown attribution method 'gradcm'" in capsys.readouterr().err
    code = main(
        [
            "attribute",
            "--config",
            DEMO_CONFIG,
            "--target",
            "nonsense",
            "--images",
            str(tiny_world / "test"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2


def test_model_report_page(tmp_path, capsys):
    code = main(
        [
            "report-model",
            "--config",
            DEMO_CONFIG,
            "-s",
            "report.steps=4",
            "-s",
            "report.icon_size=32",
            "-s",
            "report.classes=[class_1, class_3]",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    page = tmp_path / "model.html"
    references = check_page(page)
    assert {"class-0.png", "class-1.png", "filters.png", "style.css"} <= set(references)
    text = page.read_text()
    assert (
        "block4.conv" in text
        and "Total parameters" in text
        and "First-layer filters (block1.conv)" in text
    )
    code = main(
        [
            "report-model",
            "--config",
            DEMO_CONFIG,
            "-s",
            "report.classes=[tiger]",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2 and "unknown class 'tiger'" in capsys.readouterr().err


def test_first_filters_are_each_scaled_to_their_range():
    from atlas.config import ModelSpec
    from atlas.models import load_model
    from atlas.reports.model_report import first_filters

    name, filters = first_filters(load_model(ModelSpec(arch="resnet18")).module)
    assert name == "conv1" and filters.shape == (64, 7, 7, 3)
    assert np.allclose(filters.min(axis=(1, 2, 3)), 0) and np.allclose(
        filters.max(axis=(1, 2, 3)), 1
    )


def test_the_building_blocks_section(cnn, tiny_world, tmp_path):
    """``attribute.blocks_layer`` adds the spatial attribution, the neuron groups (maps,
    icons, attributions that sum with the remainder to the layer's total for every class
    shown) and the semantic dictionary to each image's page."""
    from atlas.attribution.sanity import select_photos
    from atlas.config import AttributeConfig, Recipe
    from atlas.reports.attribution_report import attribute_images

    options = AttributeConfig(
        methods=["saliency"],
        randomize_methods=[],
        deletion_steps=0,
        blocks_layer="block3",
        blocks_groups=3,
        blocks_icon_steps=2,
    )
    records = select_photos(tiny_world / "test", 2)
    reports = attribute_images(cnn, records, tmp_path, options, Recipe(icon_size=16))
    for report in reports:
        blocks = report.blocks
        assert blocks["classes"][0] == cnn.class_names[report.target]
        assert len(blocks["groups"]) == 3
        for k in range(len(blocks["classes"])):
            parts = sum(g["attribution"][k] for g in blocks["groups"]) + blocks["remainder"][k]
            assert parts == pytest.approx(blocks["total"][k], rel=1e-3, abs=1e-5)
        page = (tmp_path / f"{report.stem}.html").read_text()
        check_page(tmp_path / f"{report.stem}.html")
        for phrase in ("Spatial attribution", "Neuron groups", "Semantic dictionary"):
            assert phrase in page
        icon = tmp_path / f"{report.stem}.blocks.group0.icon.png"
        assert icon.exists()
        rows = blocks["dictionary"]
        assert len(rows) == len(rows[0]) and len(rows[0][0]) == options.blocks_top_channels


def test_a_limit_draws_from_the_whole_listing(tiny_world):
    """``attribute.limit`` spreads its images over the source's listing: three of a folder
    of ten classes come from three classes, not the first class's folder."""
    from atlas.config import AttributeConfig
    from atlas.reports.attribution_report import select_images

    options = AttributeConfig(limit=3)
    chosen = select_images([str(tiny_world / "test")], sorted(CLASS_NAMES), options)
    assert len(chosen) == 3
    assert len({r.label for r in chosen}) == 3
    assert chosen[0].name == sorted(r.name for r in chosen)[0]
