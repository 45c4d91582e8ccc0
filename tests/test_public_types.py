"""The public annotations say what the code does (the package ships ``py.typed``): checked by introspection, cheaply,
where a type checker's user would otherwise be told something false."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Sequence

import numpy as np
import torch

import biohicl


def union_args(hint) -> set:
    """The members of a union hint (the hint itself when it is no union), their generic origins too."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, type(int | str)) else (hint,)
    return set(args) | {typing.get_origin(a) for a in args if typing.get_origin(a) is not None}


def test_every_documented_model_takes_the_calls_evaluation_makes_and_gives_what_the_protocol_allows():
    """``Encoder.encode``: the texts by position, the rest by keyword (as evaluation calls it), so BioHiCL and
    OnnxEncoder (``convert_to`` 4th) and a SentenceTransformer (``prompt_name`` 2nd, ``kind`` through ``**kwargs``)
    all fit it; it returns what they return (``BioHiCL.encode``: an array or a tensor)."""
    from sentence_transformers import SentenceTransformer

    from biohicl.evaluation import encoder as module
    from biohicl.evaluation.encoder import DtypeEncoder, Encoder, SentenceTransformerEncoder
    from biohicl.models.model import BioHiCL
    from biohicl.models.onnx_backend import OnnxEncoder

    parameters = list(inspect.signature(Encoder.encode).parameters.values())[1:]
    assert parameters[0].name == "texts" and parameters[0].kind is inspect.Parameter.POSITIONAL_ONLY
    assert {p.name: p.kind for p in parameters[1:]} == dict.fromkeys(
        ("batch_size", "kind", "show_progress_bar"), inspect.Parameter.KEYWORD_ONLY
    )
    calls = {"batch_size": 2, "kind": "query", "show_progress_bar": False}
    for cls in (BioHiCL, OnnxEncoder, SentenceTransformer, DtypeEncoder, SentenceTransformerEncoder):
        inspect.signature(cls.encode).bind(None, ["a text"], **calls)  # a TypeError names the class's mismatch
    allowed = union_args(typing.get_type_hints(Encoder.encode, {**vars(module), "torch": torch})["return"])
    for cls in (BioHiCL, OnnxEncoder, DtypeEncoder, SentenceTransformerEncoder):
        assert union_args(typing.get_type_hints(cls.encode)["return"]) <= allowed, cls


def test_the_collators_tokenize_is_typed_with_the_kind_it_is_called_with():
    from biohicl.data import collator as module
    from biohicl.data.collator import BioHiCLDataCollator

    tokenize = typing.get_type_hints(BioHiCLDataCollator)["tokenize"]
    signature = inspect.signature(tokenize.__call__)
    assert signature.parameters["kind"].default == "document"
    returned = typing.get_type_hints(BioHiCLDataCollator.__call__, vars(module))["return"]
    assert typing.get_origin(returned) is dict
    assert dict in union_args(typing.get_args(returned)[1])  # title_inputs / abstract_inputs are dicts


def test_the_pair_sampler_takes_the_arrays_mining_gives():
    from biohicl.data.samplers import MeshPairBatchSampler

    pairs = typing.get_type_hints(MeshPairBatchSampler.from_pairs)
    for name in ("anchors", "partners", "siml"):
        assert np.ndarray in union_args(pairs[name]), name
    lists = [
        pairs["negatives"],
        typing.get_type_hints(MeshPairBatchSampler.__init__)["partners"],
        typing.get_type_hints(MeshPairBatchSampler.from_labels)["negatives"],
    ]
    for hint in lists:  # mine_negatives gives a list of arrays
        inner = next(a for a in (hint, *typing.get_args(hint)) if typing.get_origin(a) is Sequence)
        assert np.ndarray in union_args(typing.get_args(inner)[0]), hint


def public_functions():
    """Every function and public method of a class that a biohicl package exports in ``__all__``."""
    packages = ["biohicl"] + [f"biohicl.{m.name}" for m in pkgutil.iter_modules(biohicl.__path__) if m.ispkg]
    seen = set()
    for package in packages:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            members = [(name, value)] if inspect.isfunction(value) else []
            if inspect.isclass(value) and value.__module__.startswith("biohicl"):
                for key, member in vars(value).items():
                    function = member.__func__ if isinstance(member, classmethod | staticmethod) else member
                    if not key.startswith("_") and inspect.isfunction(function):
                        members.append((f"{name}.{key}", function))
            for label, function in members:
                if function.__module__.startswith("biohicl") and function not in seen:
                    seen.add(function)
                    yield f"{package}.{label}", function


def test_every_exported_function_says_what_it_returns_and_takes():
    functions = dict(public_functions())
    assert "biohicl.data.build_dataset_from_files" in functions and "biohicl.BioHiCL.tokenize" in functions
    assert [name for name, f in functions.items() if "return" not in f.__annotations__] == []
    untyped = [
        f"{name}({p.name})"
        for name, f in functions.items()
        for p in list(inspect.signature(f).parameters.values())
        if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name not in f.__annotations__
    ]  # fmt: skip
    assert untyped == []


def test_the_node_cache_is_keyed_by_the_ancestors_switch(mesh):
    import scipy.sparse as sp

    mesh.similarity_matrix([["D006331"], ["D003920"]], ancestors=True)
    mesh.similarity_matrix([["D006331"], ["D003920"]], ancestors=False)
    assert set(mesh._node_cache) == {True, False}
    for rows, matrix in mesh._node_cache.values():
        assert isinstance(rows, dict) and sp.issparse(matrix) and matrix.shape[0] == len(rows)


def test_data_dir_is_a_path_when_required():
    from biohicl import settings

    hints = [typing.get_type_hints(f, vars(settings)) for f in typing.get_overloads(settings.data_dir)]
    assert [(h["required"], h["return"]) for h in hints] == [
        (typing.Literal[True], settings.Path),
        (bool, settings.Path | None),
    ]
