import pytest

from tlcli.console.errors import UsageError
from tlcli.prompts.templates import Exemplar, builtin_names, load_template, parse_template


def test_builtins_exist():
    assert builtin_names() == ["direct", "few-shot-cot", "self-consistency", "zero-shot-cot"]


def test_zero_shot_cot_appends_kojima_trigger():
    prompt = load_template("zero-shot-cot").render({"id": 1, "question": "What is 2+2?"})
    assert prompt == "Q: What is 2+2?\nA: Let's think step by step."


def test_choices_render_with_letters():
    prompt = load_template("direct").render({"id": 1, "question": "Pick", "choices": ["x", "y"]})
    assert prompt == "Q: Pick\nAnswer choices: (A) x (B) y\nA:"
    keyed = load_template("direct").render({"id": 1, "question": "Pick", "choices": {"P": "x", "Q": "y"}})
    assert "(P) x (Q) y" in keyed


def test_few_shot_cot_puts_exemplars_first():
    exemplar = Exemplar(question="1+1?", rationale="One and one make 2.", answer=2)
    prompt = load_template("few-shot-cot").render({"id": 1, "question": "2+3?"}, [exemplar])
    assert prompt == "Q: 1+1?\nA: One and one make 2. The answer is 2.\n\nQ: 2+3?\nA:"


def test_self_consistency_is_zero_shot_without_exemplars_and_samples_by_default():
    template = load_template("self-consistency")
    assert template.render({"id": 1, "question": "q"}).endswith("A: Let's think step by step.")
    assert template.meta.n == 5 and template.meta.temperature > 0


def test_user_template_file_with_declared_variables(tmp_path):
    path = tmp_path / "quiz.jinja"
    path.write_text('{#- tlcli-template\nvariables = ["question", "topic"]\nmax_tokens = 9\n-#}\n'
                    "Topic: {{ topic | upper }}\n{{ question }}\nAnswer:")
    template = load_template(str(path))
    assert template.name == "quiz" and template.meta.max_tokens == 9
    assert template.render({"id": 1, "question": "Why?", "topic": "sky"}) == "Topic: SKY\nWhy?\nAnswer:"
    with pytest.raises(UsageError, match="'topic'"):
        template.render({"id": 7, "question": "Why?"})


def test_undeclared_variable_is_rejected_at_load(tmp_path):
    with pytest.raises(UsageError, match=r"\['topic'\] without declaring"):
        parse_template('{#- tlcli-template\nvariables = ["question"]\n-#}\n{{ topic }}', "t", tmp_path / "t.jinja")


@pytest.mark.parametrize(
    "text, words",
    [
        ("Q: {{ question }}", "no header"),
        ('{#- tlcli-template\nvariables = [\n-#}\nx', "not valid TOML"),
        ('{#- tlcli-template\ncolour = "red"\n-#}\nx', "colour"),
        ('{#- tlcli-template\n-#}\n{% if %}', "line"),
    ],
)
def test_bad_template_files(tmp_path, text, words):
    with pytest.raises(UsageError, match=words):
        parse_template(text, "t", tmp_path / "t.jinja")


def test_sandbox_blocks_python_internals(tmp_path):
    template = parse_template('{#- tlcli-template\n-#}\n{{ question.__class__.__mro__[1].__subclasses__() }}',
                              "evil", tmp_path / "evil.jinja")
    with pytest.raises(UsageError, match="evil"):
        template.render({"id": 1, "question": "q"})


def test_unknown_template_name_lists_choices():
    with pytest.raises(UsageError, match="direct, few-shot-cot"):
        load_template("chain-of-thoughts")
