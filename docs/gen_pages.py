"""mkdocs-gen-files script: writes the generated pages into the site being built.

The pages themselves are made by `docs/sitegen.py` (the configuration reference, the
benchmarks, the demo's figures, the API reference); this only hands them to MkDocs.
"""

import sys
from pathlib import Path

import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sitegen

pages = {
    "configuration.md": sitegen.config_markdown(),
    "benchmarks.md": sitegen.benchmarks_markdown(
        sitegen.parse_bench(sitegen.BENCH_RECORD.read_text())
    ),
    "demo-figures.md": sitegen.demo_metrics_markdown(sitegen.metric_files()),
    **sitegen.api_pages(sitegen.ROOT / "atlas"),
}
for name, content in pages.items():
    with mkdocs_gen_files.open(name, "w") as page:
        page.write(content)
