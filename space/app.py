"""TiME in the browser: named entities, UD analysis, question answering and student-vs-teacher speed.

    python app.py                 # the models in models.json next to this file (what the Hub Space runs)
    time-hub space serve          # from a time-hub checkout: the models found in runs/

`build_app(models)` builds the Blocks app for a models mapping (`time_hub.publish.space.read_models_file`); only the
ids/paths it lists can be run (the allow-list). API endpoints (gradio_client): `/ner`, `/ud`, `/qa`, `/speed`, each
taking (language, size, pasted model id or "", text...).
"""

from __future__ import annotations

import sys
from pathlib import Path

import gradio as gr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # inference.py, and on the Hub the time_hub copy staged next to this file

import inference  # noqa: E402

from time_hub.publish.space import ROLES, allowed, read_models_file  # noqa: E402
from time_hub.tasks.registry import TASKS  # noqa: E402

MAX_CHARS, MAX_WORDS = 1000, 128  # NER, UD and speed inputs: a small shared CPU answers everyone
MAX_QUESTION_CHARS, MAX_CONTEXT_CHARS = 300, 3000
LANGUAGES = {"da": "Danish", "en": "English", "de": "German", "sv": "Swedish", "und": "undetermined"}
TASK_NAMES = {name: spec.short_name for name, spec in TASKS.items()} | {"encoder": "encoder", "teacher": "teacher"}
EXAMPLES = {
    "da": {
        "ner": "Mette Frederiksen mødtes med Emmanuel Macron i Paris, før hun besøgte Novo Nordisk i Bagsværd.",
        "ud": "Flertallet lever stadig under plastikstykker eller tæpper.",
        "qa": (
            "Hvor ligger Novo Nordisks hovedsæde?",
            "Novo Nordisk er en dansk medicinalvirksomhed grundlagt i 1923. Virksomhedens hovedsæde ligger i "
            "Bagsværd nord for København, og den har omkring 60.000 ansatte i 80 lande.",
        ),
        "speed": "Hvor kommer julemanden fra?\nFlertallet lever stadig under plastikstykker eller tæpper.",
    },
    "en": {
        "ner": "Angela Merkel met Joe Biden in Washington before flying to Airbus headquarters in Toulouse.",
        "ud": "The quick brown fox jumps over the lazy dog.",
        "qa": (
            "How many points did the Panthers defense surrender?",
            "The Panthers defense gave up just 308 points, ranking sixth in the league, while also leading the NFL "
            "in interceptions with 24 and boasting four Pro Bowl selections.",
        ),
        "speed": "The quick brown fox jumps over the lazy dog.\nAngela Merkel met Joe Biden in Washington.",
    },
    "de": {
        "ner": "Olaf Scholz traf Emmanuel Macron in Berlin, bevor er die Siemens AG in München besuchte.",
        "ud": "Der schnelle braune Fuchs springt über den faulen Hund.",
        "qa": (
            "Wo hat Siemens seinen Sitz?",
            "Die Siemens AG ist ein Technologiekonzern mit Sitz in München. Das Unternehmen wurde 1847 gegründet.",
        ),
        "speed": "Der schnelle braune Fuchs springt über den faulen Hund.\nOlaf Scholz traf Macron in Berlin.",
    },
}
COLORS = {"PER": "#fca5a5", "LOC": "#93c5fd", "ORG": "#86efac", "MISC": "#fde68a"}
UD_HEADERS = ["id", "token", "UPOS", "lemma", "features", "head", "relation"]
SPEED_HEADERS = ["role", "model", "parameters (M)", "ms per batch (median)", "sentences/s"]
THEME = gr.themes.Soft(primary_hue="emerald")
CSS = ".tree-box {overflow-x: auto} footer {display: none !important}"
INTRO = (
    "# TiME: tiny monolingual encoders\n"
    "Small, fast encoders distilled from a multilingual teacher (MiniLMv2 relation loss), fine-tuned for named "
    "entities, UD analysis and question answering. Pick a language and size, or paste the id of a listed model. "
    "Text is split into words by a simple regex (letters/digits, punctuation alone), not by a trained tokenizer. "
    f"Inputs are limited to {MAX_CHARS:,} characters and {MAX_WORDS} words."
)


def check_text(text: str | None, what: str = "text", max_chars: int = MAX_CHARS, max_words: int | None = MAX_WORDS):
    """The stripped text, or a gr.Error that says which limit it broke."""
    text = (text or "").strip()
    if not text:
        raise Answer(f"Please enter some {what}.")
    if len(text) > max_chars:
        raise Answer(
            f"Input too long: the {what} has {len(text):,} characters, the limit is {max_chars:,}. Please shorten it."
        )
    n = len(inference.words(text))
    if max_words is not None and n > max_words:
        raise Answer(f"Input too long: the {what} has {n} words, the limit is {max_words}. Please shorten it.")
    return text


def pick(models: dict, lang: str, size: str, pasted: str | None, role: str) -> str:
    """The model to run for `role`: the pasted id/path if the models file lists it, else the chosen language/size's."""
    pasted = (pasted or "").strip()
    if pasted:
        listed = allowed(models)
        match = pasted if pasted in listed else _same_path(pasted, listed)
        if match is None:
            raise Answer(
                f"Unknown model {pasted!r}: this demo only runs the models it lists. Pick a language and size, "
                f"or paste one of: {', '.join(sorted(listed))}."
            )
        roles = {r for sizes in models.values() for e in sizes.values() for r in ROLES if e.get(r) == match}
        if role in TASKS and role not in roles:
            raise Answer(
                f"{pasted!r} is listed as a {'/'.join(sorted(roles))} model, not as a {TASK_NAMES[role]} model."
            )
        return match
    entry = models.get(lang, {}).get(size)
    if entry is None:
        raise Answer(f"No models for language {lang!r} and size {size!r}: please pick them from the lists.")
    spec = entry.get(role) or (role == "encoder" and next((entry[t] for t in TASKS if entry.get(t)), None))
    if not spec:
        raise Answer(f"There is no {TASK_NAMES[role]} model for {LANGUAGES.get(lang, lang)} / {size} yet.")
    return spec


def Answer(message: str) -> gr.Error:  # noqa: N802 (raised like an exception class)
    """An ordinary answer to a user's input (nothing to run, input too long): shown, not logged as a traceback."""
    return gr.Error(message, print_exception=False)


def display_name(spec: str) -> str:
    """A model as the Speed table shows it: a Hub id as is, a local folder relative to here (no absolute paths)."""
    path = Path(spec)
    if not path.is_absolute():
        return spec
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return "/".join(path.parts[-2:])


def _same_path(pasted: str, listed: set[str]) -> str | None:
    """A listed local folder written another way (relative, trailing slash)."""
    if not Path(pasted).exists():
        return None
    resolved = Path(pasted).resolve()
    return next((i for i in listed if Path(i).exists() and Path(i).resolve() == resolved), None)


def _entry_of(models: dict, spec: str) -> dict:
    return next(e for sizes in models.values() for e in sizes.values() if spec in [e.get(r) for r in ROLES])


def _run(spec: str, function, *args):
    """Call an inference function; a model that cannot be loaded or run becomes a readable gr.Error."""
    try:
        return function(spec, *args)
    except gr.Error:
        raise
    except Exception as e:  # missing/private repo, bad folder, input the model cannot take
        raise gr.Error(f"Could not run {spec}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e


def build_app(models: dict) -> gr.Blocks:
    """The Space: language/size pickers, a pasted-id box, and the NER, UD analysis, QA and Speed tabs."""
    if not models:
        raise ValueError("build_app needs at least one model")
    languages = sorted(models)
    first = languages[0]

    def run_ner(lang, size, pasted, text):
        text = check_text(text)
        entities = _run(pick(models, lang, size, pasted, "ner"), inference.ner, text)
        return {"text": text, "entities": entities}, entities

    def run_ud(lang, size, pasted, text):
        text = check_text(text)
        analysis = _run(pick(models, lang, size, pasted, "ud"), inference.ud, text)
        rows = [[w.id, w.form, w.upos, w.lemma, w.feats, w.head, w.deprel] for w in analysis]
        return rows, f'<div class="tree-box">{inference.tree_svg(analysis)}</div>'

    def run_qa(lang, size, pasted, question, context):
        question = check_text(question, "question", MAX_QUESTION_CHARS, None)
        context = check_text(context, "context", MAX_CONTEXT_CHARS, None)
        best = _run(pick(models, lang, size, pasted, "qa"), inference.qa, question, context)
        label = f"answer {best['score']:.2f}"
        entities = [{"entity": label, "start": best["start"], "end": best["end"]}] if best["answer"] else []
        return {"text": context, "entities": entities}, best

    def run_speed(lang, size, pasted, text):
        sentences = [line.strip() for line in check_text(text).splitlines() if line.strip()]
        student = pick(models, lang, size, pasted, "encoder")
        entry = _entry_of(models, student) if (pasted or "").strip() else models[lang][size]
        teacher = entry.get("teacher")
        if not teacher:
            raise Answer(f"No teacher is listed for {student}: nothing to compare with.")
        rows, timings = [], {}
        for role, spec in (("student", student), ("teacher", teacher)):
            timings[role] = t = _run(spec, inference.speed, sentences)
            rows.append([role, display_name(spec), t["parameters_m"], t["ms"], t["sentences_per_s"]])
        ratio = timings["teacher"]["ms"] / timings["student"]["ms"]
        summary = (
            f"The same {len(sentences)} sentence(s) as one batch, median of 5 runs on this machine's CPU: "
            f"the student is **{ratio:.2f}x** {'faster' if ratio >= 1 else 'slower'} than the teacher."
        )
        published = inference.published_table(entry.get("bench"), entry.get("encoder") or student)
        return rows, summary, published or "No published speed/energy table for this model."

    def sizes_of(code: str, current: str):
        """The size list of a newly picked language (keeping the chosen size where that language has it)."""
        sizes = sorted(models.get(code, {})) or [""]
        return gr.Dropdown(choices=sizes, value=current if current in sizes else sizes[0])

    def from_query(request: gr.Request):
        """Pre-fill from the page URL (`?lang=da&size=xs&model=...&text=...`), so a link can share a setup."""
        query = dict(request.query_params) if request else {}
        code = query.get("lang") if query.get("lang") in models else first
        sizes = sorted(models[code])
        chosen = query.get("size") if query.get("size") in sizes else sizes[0]
        return (
            gr.Dropdown(value=code),
            gr.Dropdown(choices=sizes, value=chosen),
            query.get("model", ""),
            query.get("text", ""),
        )

    with gr.Blocks(title="TiME: tiny monolingual encoders") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            lang = gr.Dropdown([(f"{LANGUAGES.get(c, c)} ({c})", c) for c in languages], value=first, label="Language")
            size = gr.Dropdown(
                sorted(models[first]), value=sorted(models[first])[0], label="Size", allow_custom_value=True
            )
            pasted = gr.Textbox(label="…or paste a listed model id / path", placeholder="e.g. time/time-da-xs-ner")
        lang.change(sizes_of, [lang, size], size, api_visibility="private")
        examples = [code for code in languages if code in EXAMPLES]

        with gr.Tab("NER"):
            ner_text = gr.Textbox(label="Text", lines=3, info=f"At most {MAX_CHARS:,} characters / {MAX_WORDS} words")
            ner_button = gr.Button("Find entities", variant="primary")
            ner_out = gr.HighlightedText(label="Entities", color_map=COLORS, show_legend=True, elem_id="ner-out")
            ner_json = gr.JSON(label="Entities (character offsets)", elem_id="ner-json")
            if examples:
                gr.Examples([[c, EXAMPLES[c]["ner"]] for c in examples], [lang, ner_text], label="Examples")
            gr.on(
                [ner_button.click, ner_text.submit],
                run_ner,
                [lang, size, pasted, ner_text],
                [ner_out, ner_json],
                api_name="ner",
            )

        with gr.Tab("UD analysis"):
            ud_text = gr.Textbox(label="Sentence", lines=2, info="Analysed as one sentence")
            ud_button = gr.Button("Analyse", variant="primary")
            ud_table = gr.Dataframe(
                headers=UD_HEADERS,
                label="Analysis",
                interactive=False,
                wrap=True,
                column_widths=["5%", "15%", "9%", "15%", "36%", "7%", "13%"],
            )
            ud_tree = gr.HTML(label="Dependency tree")
            if examples:
                gr.Examples([[c, EXAMPLES[c]["ud"]] for c in examples], [lang, ud_text], label="Examples")
            gr.on(
                [ud_button.click, ud_text.submit],
                run_ud,
                [lang, size, pasted, ud_text],
                [ud_table, ud_tree],
                api_name="ud",
            )

        with gr.Tab("QA"):
            question = gr.Textbox(label="Question", info=f"At most {MAX_QUESTION_CHARS} characters")
            context = gr.Textbox(label="Context", lines=6, info=f"At most {MAX_CONTEXT_CHARS:,} characters")
            qa_button = gr.Button("Answer", variant="primary")
            qa_out = gr.HighlightedText(label="Answer in the context (label: probability)")
            qa_json = gr.JSON(label="Answer span and score")
            if examples:
                gr.Examples([[c, *EXAMPLES[c]["qa"]] for c in examples], [lang, question, context], label="Examples")
            qa_button.click(run_qa, [lang, size, pasted, question, context], [qa_out, qa_json], api_name="qa")

        with gr.Tab("Speed"):
            speed_text = gr.Textbox(label="Sentences (one per line, timed as one batch)", lines=4)
            speed_button = gr.Button("Time student and teacher", variant="primary")
            speed_table = gr.Dataframe(headers=SPEED_HEADERS, label="Measured now", interactive=False)
            speed_summary = gr.Markdown()
            gr.Markdown("### Published benchmark")
            published = gr.Markdown()
            if examples:
                gr.Examples([[c, EXAMPLES[c]["speed"]] for c in examples], [lang, speed_text], label="Examples")
            speed_button.click(
                run_speed, [lang, size, pasted, speed_text], [speed_table, speed_summary, published], api_name="speed"
            )
        demo.load(from_query, None, [lang, size, pasted, ner_text], api_visibility="private")
    return demo.queue(default_concurrency_limit=2)


def launch(demo: gr.Blocks, **kwargs):
    """`demo.launch` with the app's theme and CSS (Gradio 6 takes them in `launch`)."""
    return demo.launch(theme=THEME, css=CSS, **kwargs)


if __name__ == "__main__":
    launch(build_app(read_models_file(HERE / "models.json")))
