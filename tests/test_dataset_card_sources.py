"""What the dataset card and a model card's training-data paragraph say a PubTator input is: BioCreative V CDR (its
license and citation) only when the PubTator files are that corpus's, else the builder's own annotations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biohicl.data.build import build_dataset_from_files
from biohicl.data.dataset_card import (
    BC5CDR_INFO,
    PUBTATOR_BUILDER_INFO,
    card_metadata,
    is_bc5cdr_file,
    render_dataset_card,
    render_license_file,
)
from biohicl.hub.card_data_source import training_data_paragraph

BC5CDR = "BioCreative V CDR"
PUBLIC_DOMAIN = "public domain (U.S. Government work, NCBI)"
LI_ET_AL = "Li et al., BioCreative V CDR task corpus, Database 2016"
BUILDER = "PubTator-format entity annotations supplied by the dataset's builder"

#: three abstracts in PubTator format, disease mentions normalised to MeSH descriptors (PMIDs from ``first``)
DOCS = (
    ("Diabetes and hypertension.", (("Disease", "D003920"), ("Disease", "D006973"))),
    ("Diabetes in adults.", (("Disease", "D003920"),)),
    ("Hypertension in adults.", (("Disease", "D006973"),)),
)


def _pubtator(path: Path, first: int) -> Path:
    blocks = []
    for i, (title, mentions) in enumerate(DOCS):
        pmid = first + i
        lines = [f"{pmid}|t|{title}", f"{pmid}|a|An abstract about {title.lower()}"]
        lines += [f"{pmid}\t0\t8\tmention\t{kind}\t{mesh_id}" for kind, mesh_id in mentions]
        blocks.append("\n".join(lines) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(blocks) + "\n", encoding="utf-8")
    return path


def _build(files: list[Path], mesh, output_dir: Path | None = None):
    return build_dataset_from_files(
        [("pubtator", [str(f) for f in files])], output_dir, mesh, progress=False, top_k=2, decontaminate=False,
        dev_split=None,
    )  # fmt: skip


def _sources_section(card: str) -> str:
    return card.split("## Sources and licenses", 1)[1]


def test_a_builders_own_pubtator_file_is_not_credited_to_bc5cdr(tmp_path, mesh):
    # the review's case: a hospital's own PubTator file was called BioCreative V CDR, public domain, cited Li et al.
    dataset, summary = _build([_pubtator(tmp_path / "in" / "sub.PubTator.txt", 1000)], mesh)
    assert summary.read["source_files"] == {"pubtator": ["in/sub.PubTator.txt"]}
    card = render_dataset_card(dataset, summary)
    assert BC5CDR not in card and PUBLIC_DOMAIN not in card and LI_ET_AL not in card
    sources = _sources_section(card)
    assert (
        f"- **{BUILDER}** — license: as its provider states (not recorded by biohicl). Cite: as its provider states."
        in sources
    )
    assert "- `mentions`: labels as supplied by the dataset's builder, treated as entity-mention labels" in card
    assert (
        card_metadata(dataset, summary)["license_name"] == "pubtator: as its provider states (not recorded by biohicl)"
    )
    assert "pubmed" not in card_metadata(dataset, summary)["tags"]  # no PubMed data vouched for
    license_file = render_license_file(dataset, summary)
    assert f"- **{BUILDER}** (`pubtator`): as its provider states" in license_file and BC5CDR not in license_file


def test_the_bc5cdr_files_keep_their_credit_license_and_citation(tmp_path, mesh):
    files = [_pubtator(tmp_path / "bc5cdr" / "CDR_TrainingSet.PubTator.txt", 1000)]
    files.append(_pubtator(tmp_path / "bc5cdr" / "CDR_TestSet.PubTator.txt", 2000))
    dataset, summary = _build(files, mesh)
    card = render_dataset_card(dataset, summary)
    sources = _sources_section(card)
    assert f"- **{BC5CDR} (PubTator)** — license: {PUBLIC_DOMAIN}. Cite: {LI_ET_AL}." in sources
    assert BUILDER not in card
    assert "- `mentions`: entity mentions: MeSH ids of the chemicals and diseases named in the text (PubTator)" in card
    assert card_metadata(dataset, summary)["license_name"] == f"pubtator: {PUBLIC_DOMAIN}"
    assert "pubmed" in card_metadata(dataset, summary)["tags"]


def test_bc5cdr_and_a_builders_file_together_name_both(tmp_path, mesh):
    files = [_pubtator(tmp_path / "bc5cdr" / "CDR_TrainingSet.PubTator.txt", 1000)]
    files.append(_pubtator(tmp_path / "in" / "mine.PubTator.txt", 2000))
    dataset, summary = _build(files, mesh)
    sources = _sources_section(render_dataset_card(dataset, summary))
    assert f"{BC5CDR} (PubTator) and {BUILDER}" in sources
    assert f"license: {BC5CDR}: {PUBLIC_DOMAIN}; the rest: as its provider states" in sources


@pytest.mark.parametrize(
    "files, expected",
    [
        (["bc5cdr/CDR_TrainingSet.PubTator.txt", "bc5cdr/CDR_DevelopmentSet.PubTator.txt"], BC5CDR_INFO),
        (["in/sub.PubTator.txt"], PUBTATOR_BUILDER_INFO),
        (["bc5cdr/CDR_TrainingSet.PubTator.txt", "in/sub.PubTator.txt"], None),  # which is PubTator's: unknown
        ("not a list", None),
    ],
)
def test_a_summary_without_files_per_source_is_judged_by_all_its_files(tmp_path, mesh, files, expected):
    """A build before ``read.source_files``: every file CDR's → BC5CDR, none → the builder's, else not known."""
    dataset, summary = _build([_pubtator(tmp_path / "in" / "sub.PubTator.txt", 1000)], mesh)
    old = json.loads(json.dumps(summary.to_dict()))
    del old["read"]["source_files"]
    old["read"]["files"] = files
    sources = _sources_section(render_dataset_card(dataset, old))
    if expected is None:
        assert "BioCreative V CDR if read from its `CDR_*.PubTator.txt` files" in sources
        assert f"license: {PUBLIC_DOMAIN} for {BC5CDR}; otherwise as its provider states" in sources
    else:
        assert f"- **{expected['name']}** — license: {expected['license']}. Cite: {expected['citation']}." in sources


def test_a_card_without_a_summary_does_not_vouch_for_pubtator_inputs(tmp_path, mesh):
    dataset, _ = _build([_pubtator(tmp_path / "in" / "sub.PubTator.txt", 1000)], mesh)
    assert "this build does not record which" in render_license_file(dataset)
    assert f"{PUBLIC_DOMAIN} for {BC5CDR}; otherwise as its provider states" in render_license_file(dataset)


def test_model_card_paragraph_names_a_builders_pubtator_file_as_such(tmp_path, mesh):
    _build([_pubtator(tmp_path / "in" / "sub.PubTator.txt", 1000)], mesh, tmp_path / "ds")
    counts = {"documents": 3, "splits": ["train"], "label_kinds": {"mentions": 3}}
    text = training_data_paragraph(str(tmp_path / "ds"), counts)
    assert BC5CDR not in text and PUBLIC_DOMAIN not in text
    assert (
        f"| {BUILDER} (`pubtator`) | entity-mention | 3 | 0 | 0 | as its provider states (not recorded by biohicl) |"
        in text
    )
    assert "Labels: entity-mention labels as supplied with the abstracts (3 training documents)." in text


def test_model_card_paragraph_keeps_bc5cdrs_terms(tmp_path, mesh):
    _build([_pubtator(tmp_path / "bc5cdr" / "CDR_DevelopmentSet.PubTator.txt", 1000)], mesh, tmp_path / "ds")
    counts = {"documents": 3, "splits": ["train"], "label_kinds": {"mentions": 3}}
    text = training_data_paragraph(str(tmp_path / "ds"), counts)
    assert f"| {BC5CDR} (PubTator) (`pubtator`) | entity-mention | 3 | 0 | 0 | {PUBLIC_DOMAIN} |" in text
    assert "Labels: entity mentions: MeSH ids of the chemicals and diseases named in the text (PubTator)" in text


@pytest.mark.parametrize(
    "name, expected",
    [
        ("bc5cdr/CDR_TrainingSet.PubTator.txt", True),
        ("CDR_DevelopmentSet.PubTator.txt.gz", True),
        ("data\\CDR_TestSet.PubTator.txt", True),
        ("in/CDR_export.PubTator.txt", False),  # a clinical data repository's export is not the corpus
        ("in/cdr_trainingset.pubtator.txt", False),
        ("in/sub.PubTator.txt", False),
    ],
)
def test_only_the_corpus_file_names_are_bc5cdrs(name, expected):
    assert is_bc5cdr_file(name) is expected


def test_the_hub_layouts_license_file_names_a_builders_pubtator_file_as_such(tmp_path, mesh):
    from biohicl.hub.dataset_repo import build_dataset_repo_folder

    _build([_pubtator(tmp_path / "in" / "sub.PubTator.txt", 1000)], mesh, tmp_path / "built")
    staged = build_dataset_repo_folder(tmp_path / "built", tmp_path / "staged", license="other")
    license_file = (staged / "LICENSE.md").read_text(encoding="utf-8")
    assert f"- **{BUILDER}** (`pubtator`): as its provider states" in license_file and BC5CDR not in license_file
