"""The --tags grammar on the fixture package: which models, and which args."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._discover import discover
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._tags import Index, parse_selector, split_tags

PACKAGE = Path(__file__).resolve().parents[1] / "fixtures" / "mad_package"
ALL = ["dummy", "dummy_multi", "cpu_only", "nvidia_only", "no_dockerfile", "dummy2/model1", "dummy2/model2",
       "dummy3/model3", "dummy3/model4_bs128", "dummy3/model4_bs256", "dummy3/model4"]


def selected(*tags: str) -> list[tuple[str, str]]:
    return [(m["name"], m["args"]) for m in discover(str(PACKAGE), list(tags), {"gpu_vendor": "AMD"})["models"]]


@pytest.mark.parametrize(("tags", "expected"), [
    (["dummy"], [("dummy", "")]),
    (["dummies"], [("dummy", ""), ("dummy_multi", "--steps 2"), ("dummy2/model1", "--foo 1"),
                   ("dummy3/model3", "--mode static")]),
    (["quick"], [("dummy", ""), ("cpu_only", "")]),
    (["dummy2/model2"], [("dummy2/model2", "")]),
    (["dummy2/group2"], [("dummy2/model1", "--foo 1"), ("dummy2/model2", "")]),
    (["dummy2/dummies"], [("dummy2/model1", "--foo 1")]),
    (["dummy3/tuned"], [("dummy3/model4_bs128", "--batch 128 --tuned"),
                        ("dummy3/model4_bs256", "--batch 256 --tuned")]),
    (["dummy2/all"], [("dummy2/model1", "--foo 1"), ("dummy2/model2", "")]),
    (["dummy3:model4"], [("dummy3/model4", "--tuned")]),
    (["dummy2:model2:bs=8"], [("dummy2/model2", " --bs 8")]),
    (["dummy:batch_size=512"], [("dummy", " --batch_size 512")]),
    (["dummy2/model1:batch_size=512:fast"], [("dummy2/model1", "--foo 1 --batch_size 512 --fast")]),
    (["dummy3/tuned:lr=0.1"], [("dummy3/model4_bs128", "--batch 128 --tuned --lr 0.1"),
                               ("dummy3/model4_bs256", "--batch 256 --tuned --lr 0.1")]),
    (["dummy:opt=a=b"], [("dummy", " --opt a=b")]),
], ids=lambda v: ",".join(v) if isinstance(v, list) and v and isinstance(v[0], str) else None)
def test_each_notation_selects_the_right_models_and_args(tags, expected):
    assert selected(*tags) == expected


def test_all_and_no_tags_select_every_model_in_package_order():
    assert [name for name, _args in selected("all")] == ALL
    assert [name for name, _args in selected()] == ALL


def test_a_scope_can_be_written_with_all_as_the_older_notation():
    assert selected("dummy2:all") == selected("dummy2/all")


def test_comma_separated_and_repeated_tags_keep_tag_order_and_drop_repeats():
    assert selected("dummy2/model2,dummy", "dummy") == [("dummy2/model2", ""), ("dummy", "")]


def test_the_same_model_with_different_parameters_is_selected_twice():
    assert selected("dummy:n=1", "dummy:n=2") == [("dummy", " --n 1"), ("dummy", " --n 2")]


def test_update_model_runs_once_even_when_several_tags_pick_the_model():
    assert selected("dummy3/model4", "dynamic:x") == [
        ("dummy3/model4", "--tuned"), ("dummy3/model3", "--mode static --x"),
        ("dummy3/model4_bs128", "--batch 128 --tuned --x"), ("dummy3/model4_bs256", "--batch 256 --tuned --x"),
        ("dummy3/model4", "--tuned --x")]


def test_an_unknown_tag_names_the_closest_models_and_tags():
    with pytest.raises(InvalidInputError) as err:
        selected("dumy")
    assert "the tag 'dumy' matches no model" in err.value.message
    assert "closest model names and tags: dummy" in err.value.message
    assert str(PACKAGE) in err.value.message


def test_an_unknown_scoped_name_is_reported_with_the_scope():
    with pytest.raises(InvalidInputError, match=r"the tag 'dummy2/model9' matches no model; closest .*dummy2/model1"):
        selected("dummy2/model9")


def test_the_older_notation_for_a_missing_model_says_what_it_looked_for():
    with pytest.raises(InvalidInputError, match=r"'dummy2:model9' matches no model \(looked for 'dummy2/model9'\)"):
        selected("dummy2:model9")


def test_one_unknown_tag_fails_the_whole_selection():
    with pytest.raises(InvalidInputError, match="nosuchtag"):
        selected("dummy", "nosuchtag")


def test_a_tag_without_a_name_before_its_parameters_is_an_error():
    with pytest.raises(InvalidInputError, match="has no model name or tag before its ':' parts"):
        selected(":batch_size=2")


def test_a_parameter_without_a_name_is_an_error():
    with pytest.raises(InvalidInputError, match="parameter without a name"):
        selected("dummy:=3")


class _M:
    def __init__(self, name, tags=(), directory=None):
        self.name, self.tags, self.directory = name, list(tags), directory


def test_a_directory_that_is_also_a_tag_keeps_colon_parts_as_flags():
    index = Index([_M("bert", ["nlp"]), _M("nlp/bert", [], "nlp")])
    assert parse_selector("nlp:fast", index).target == "nlp"  # 'nlp/fast' is no model: a flag
    assert parse_selector("nlp:bert", index).target == "nlp/bert"  # the model exists: older notation
    assert parse_selector("nlp:fast", index).extra_args == " --fast"


def test_tags_split_on_commas_and_ignore_blanks():
    assert split_tags(["a, b", "", "c,,"]) == ["a", "b", "c"]
