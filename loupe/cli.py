"""The ``loupe`` command: index, search, demo (and the agent, UI and evals).

Errors meant for the user (:class:`~loupe.base.errors.LoupeError`) print one line
and exit with status 1; anything else is a bug and keeps its traceback.
``loupe index`` exits with status 3 when it finished but skipped files (each
named on its own line), so a script can tell a clean run from a partial one.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Optional

import typer
from tqdm import tqdm

from loupe.evals.paths import DATASETS
from loupe.base.config import Settings, load_settings
from loupe.base.errors import LoupeError
from loupe.tools.models.registry import require_extra

if TYPE_CHECKING:
    from loupe.api import Answer, Found

SKIPPED_FILES_EXIT = 3

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Loupe: find identical, near-identical and similar images, and images by their text.")


class _State:
    settings: Settings


state = _State()


@app.callback()
def main(
    index: Annotated[Optional[str], typer.Option(
        help="Index folder or s3://bucket/prefix (default: $LOUPE_INDEX or ~/.loupe/index).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML config file (default: $LOUPE_CONFIG or ./loupe.toml).")] = None,
) -> None:
    from loupe.tools.process import configure_process

    configure_process()
    settings = _user_errors(lambda: load_settings(config))
    state.settings = settings.with_index_dir(index) if index else settings


@app.command()
def index(
    paths: Annotated[list[str], typer.Argument(help="Folders, image files or s3://bucket/prefix to index.")],
    metadata: Annotated[Optional[Path], typer.Option(help="CSV or JSONL with title, description, price, ... per image.")] = None,
    prune: Annotated[bool, typer.Option(help="Remove rows of files under PATHS that no longer exist.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per commit.")] = 16,
    workers: Annotated[Optional[int], typer.Option(
        min=1, help="Threads reading the next batch of files while the models run (default: one per core); "
                    "with --engine ray, the model actors (default: 2).")] = None,
    follow_symlinks: Annotated[bool, typer.Option(
        help="Index symlinked files and folders that point outside PATHS too (off: such links are skipped).")] = False,
    engine: Annotated[Literal["local", "ray"], typer.Option(
        help="local: in this process; ray: the models run in actors on a Ray cluster (the [ray] extra).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(
        help="The Ray cluster for --engine ray, e.g. 10.0.0.5:6379 (default: $RAY_ADDRESS, else a local Ray).")] = None,
) -> None:
    """Index images into the LanceDB table; re-running only processes new and changed files.
    Exit status 0: all indexed; 1: an error stopped the run; 3: finished, but some files were skipped."""
    report = _user_errors(lambda: run_index(state.settings, paths, metadata, prune, batch_size, follow_symlinks,
                                            workers, engine, ray_address))
    if report.problems:
        raise typer.Exit(code=SKIPPED_FILES_EXIT)


def run_index(settings: Settings, paths: list[str | Path], metadata: Path | None, prune: bool, batch_size: int,
              follow_symlinks: bool = False, workers: int | None = None, engine: str = "local",
              ray_address: str | None = None):
    """Index through the Python API (on Ray with engine="ray") with a progress bar; a broken metadata file is
    named and left out; the image encoder in use is named, with why (``image_encoder = "auto"`` chooses it)."""
    from loupe.api import Collection
    from loupe.display import console, print_report
    from loupe.metadata import load_metadata

    entries = None
    if metadata is not None:
        try:
            entries = load_metadata(metadata)
        except LoupeError as exc:
            console.print(f"[yellow]metadata not applied:[/yellow] {exc}. Fix it and run the same command "
                          "again: only the metadata is updated then.", highlight=False)
    bar = tqdm(total=0, unit="img", desc="indexing", disable=None, dynamic_ncols=True)

    def progress(done: int, total: int, stage: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(stage, refresh=True)

    collection = Collection(settings)
    choice = collection.toolbox.models.encoder_choice
    console.print(f"image encoder: {choice.setting} ({choice.reason})", highlight=False, soft_wrap=True)
    try:
        report = collection.index(paths, entries, prune, batch_size, workers, follow_symlinks, progress, engine,
                                  ray_address)
    finally:
        bar.close()
    print_report(report)
    console.print(f"index: {settings.index_name} ({collection.toolbox.table.count()} images)")
    return report


@app.command()
def search(
    text: Annotated[Optional[str], typer.Argument(help="Words to find in printed text, captions and metadata.")] = None,
    image: Annotated[Optional[Path], typer.Option(help="Find this picture, copies of it and similar ones.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="How many results.")] = 10,
    where: Annotated[Optional[str], typer.Option(help="SQL filter on stored columns, e.g. \"year = 2019 AND price < 20\".")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Search by image (--image) or by words (TEXT); both together run both searches."""
    if not text and not image:
        _fail("give words to search for, or --image FILE")
    from loupe.api import Collection

    # The person at the terminal chose the --image file: it may lie outside the collection.
    results = _user_errors(lambda: Collection(state.settings).search_results(image=image, text=text, where=where, k=k))
    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
        return
    from loupe.display import print_result

    for result in results:
        print_result(result, result.tool.value.replace("_", " "))


@app.command()
def demo(
    folder: Annotated[Path, typer.Option(help="Where the sample collection and its index are written.")] = Path("~/.loupe/demo"),
) -> None:
    """Build a small sample collection, index it, and run a few searches."""
    from loupe.api import Collection
    from loupe.display import console, print_result
    from loupe.sample import build_sample

    folder = folder.expanduser()
    collection, metadata, queries = build_sample(folder)
    settings = state.settings.with_index_dir(folder / "index")
    console.print(f"[bold]sample collection[/bold] written to {collection}")
    _user_errors(lambda: run_index(settings, [collection], metadata, prune=False, batch_size=8))
    sample = Collection(settings)
    for title, search in [
        ("phone photo of the temple (not in the collection)", {"image": queries["temple_phone_photo"], "k": 5}),
        ("the daisy photo (the collection has an exact copy and a crop)",
         {"image": collection / "photos" / "daisy.jpg", "k": 4}),
        ("photo of the bookshop receipt", {"image": queries["receipt_phone_photo"], "k": 3}),
        ('"corner bookshop"', {"text": "corner bookshop", "k": 3}),
        ('"total 21.00"', {"text": "total 21.00", "k": 3}),
        ('"daisy" (through the image tags)', {"text": "daisy", "k": 3}),
        ('"receipt" only from 2019', {"text": "receipt", "k": 5, "where": "year = 2019"}),
    ]:
        [result] = _user_errors(lambda search=search: sample.search_results(**search))
        print_result(result, title)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="What to find, or a follow-up such as \"only 2019\" or \"more like #2\".")],
    image: Annotated[Optional[Path], typer.Option(help="An image to ask about.")] = None,
    thread: Annotated[str, typer.Option(help="Conversation id: the same id continues a conversation.")] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer, records and trace as JSON.")] = False,
    llm: Annotated[Optional[str], typer.Option(help="LLM backend for this question: rule-based, local, hybrid, "
                                                    "openai, openai-compatible (default: [llm] backend).")] = None,
) -> None:
    """Ask the agent; it picks the tools, answers with the matched records and explains why. The records are
    printed as soon as the searches return, the explanation after."""
    from loupe.api import Collection

    settings = state.settings
    if llm:
        settings = dataclasses.replace(settings, llm=dataclasses.replace(settings.llm, backend=llm))
    with Collection(settings) as collection:
        if not as_json:
            events = _user_errors(lambda: collection.stream(question, image=image, thread=thread))
            _user_errors(lambda: print_streamed(events))
            return
        answer = _user_errors(lambda: collection.ask(question, image=image, thread=thread))
    print(json.dumps({"text": answer.text, "records": [r.to_dict() for r in answer.records], "trace": answer.trace,
                      "seconds": round(answer.seconds, 3), "thread": answer.thread_id, "fallback": answer.fallback,
                      "ungrounded": answer.ungrounded}, indent=2, ensure_ascii=False))


def print_streamed(events: Iterator[Found | Answer]) -> None:
    """Results before words: a table of records as each search returns, then the explanation (as written); the
    answer's records once more only where the last table does not already show them."""
    from loupe.api import Found
    from loupe.display import print_records

    shown: list[str] = []
    for event in events:
        if isinstance(event, Found):
            tools = ", ".join(step["tool"] for step in event.trace)
            print_records(event.records, f"found by {tools} in {event.seconds:.1f} s")
            shown = [record.id for record in event.records]
    if event.records and [record.id for record in event.records] != shown:
        print_records(event.records, "matches")
    print(event.words if event.records else event.text)
    print(f"({event.seconds:.1f} s; thread {event.thread_id})", flush=True)


@app.command()
def chat(
    thread: Annotated[str, typer.Option(help="Conversation id to start with or continue.")] = "",
) -> None:
    """Talk with the agent in the terminal: each answer's records are shown as soon as the searches return,
    the explanation after. /image PATH attaches an image to the next question, /new starts a new
    conversation, /quit leaves."""
    import uuid

    from loupe.agent.assistant import Assistant
    from loupe.agent.llm import backend_label

    assistant = _user_errors(lambda: Assistant(state.settings))
    thread = thread or uuid.uuid4().hex[:8]
    print(f"Loupe chat over {state.settings.index_name} with the {backend_label(state.settings.llm)}; "
          f"thread {thread}. /image PATH, /new, /quit")
    image: Path | None = None
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line == "/new":
            thread, image = uuid.uuid4().hex[:8], None
            print(f"new conversation: thread {thread}")
            continue
        if line.startswith("/image "):
            image = Path(line.removeprefix("/image ").strip()).expanduser()
            print(f"attached {image} to your next question")
            continue
        try:  # as `loupe ask` does: the records' table as soon as the searches return, the words after
            events = assistant.stream(line, image=image, thread_id=thread)
            print("loupe> ", end="", flush=True)
            print_streamed(events)
        except LoupeError as exc:
            print(f"error: {exc}")
        finally:
            image = None
    assistant.close()


@app.command()
def ui(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8501) -> None:
    """Start the Streamlit chat on 127.0.0.1 (headless, no usage statistics).

    Only pages served as 127.0.0.1 or localhost (or the hosts in ``[ui] allowed_hosts``) may open its
    WebSocket, so a web page that rebinds its own name to 127.0.0.1 cannot drive the chat; error details
    go to this terminal's log, not to the page; uploads are capped at Loupe's attachment limit."""
    import os

    import loupe.ui as ui_package

    settings = state.settings
    app_file = Path(ui_package.__file__).parent / "app.py"
    env = {**os.environ, "LOUPE_INDEX": settings.index_name,
           "STREAMLIT_SERVER_ALLOWED_HOSTS": " ".join(settings.ui_allowed_hosts)}
    command = [sys.executable, "-m", "streamlit", "run", str(app_file), "--server.address", "127.0.0.1",
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "minimal", "--server.enableCORS", "true",
               "--server.enableXsrfProtection", "true", "--client.showErrorDetails", "none",
               "--server.maxUploadSize", str(max(1, settings.max_upload_bytes // 2**20))]
    # Streamlit replaces this process, so a signal to `loupe ui` (Ctrl-C, a test's terminate) reaches the server.
    os.execve(sys.executable, command, env)


@app.command("mcp")
def mcp(
    transport: Annotated[Literal["stdio", "http"], typer.Option(
        help="stdio (a desktop client starts this command) or http (streamable HTTP at http://HOST:PORT/mcp).",
    )] = "stdio",
    port: Annotated[int, typer.Option(help="Port for --transport http.")] = 8765,
    host: Annotated[str, typer.Option(
        help="Address for --transport http; keep 127.0.0.1 unless other machines should reach it.")] = "127.0.0.1",
) -> None:
    """Serve the index to Model Context Protocol clients: the image_search, text_search, ocr, caption and ask tools,
    and each record's metadata and thumbnail. Only files inside the indexed folders, and uploads, are read."""
    _user_errors(lambda: require_extra("mcp", "loupe mcp"))
    from loupe.mcp_server import serve

    _user_errors(lambda: serve(state.settings, transport, host, port))


@app.command("duplicates")
def duplicates(
    keep: Annotated[str, typer.Option(help="Which copy of a group to keep, criteria most important first: "
                                           "resolution (largest), date (earliest), size (largest), path (shortest).")
                    ] = "resolution,date,path",
    where: Annotated[Optional[str], typer.Option(help="SQL filter: only these rows, e.g. \"year = 2019\".")] = None,
    output: Annotated[str, typer.Option("--format", help="table, json, csv or html (a contact sheet).")] = "table",
    out: Annotated[Optional[Path], typer.Option(help="Write the report to this file (default: the terminal).")] = None,
    move_to: Annotated[Optional[Path], typer.Option(
        help="Move every copy (not the keepers) into this folder, outside the collection; their rows leave the "
             "index and an undo file is written there.")] = None,
    dry_run: Annotated[bool, typer.Option(help="With --move-to: only list what would move.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="With --move-to: do not ask before moving.")] = False,
    undo: Annotated[Optional[Path], typer.Option(help="Move files back as an undo file lists them.")] = None,
) -> None:
    """Every group of identical and near-identical images in the index, why each copy is one, and which to keep.
    Nothing is deleted; --move-to moves the copies (after a listing) and --undo brings them back."""
    from loupe import duplicate_output
    from loupe.api import Collection
    from loupe.display import console
    from loupe.tools.duplicates import parse_keeper_rule, undo_moves

    if undo is not None:
        restored = _user_errors(lambda: undo_moves(undo.expanduser()))
        print(f"moved back {len(restored)} files; run `loupe index` on their folders to index them again")
        return
    if output not in duplicate_output.FORMATS:
        _fail(f"--format {output!r}: use one of {', '.join(duplicate_output.FORMATS)}")
    if out is not None and output == "table":
        _fail("--out writes json, csv or html: add --format json, csv or html")
    collection = Collection(state.settings)
    report = _user_errors(lambda: collection.duplicates(parse_keeper_rule(keep), where))
    text = {"json": lambda: duplicate_output.as_json(report), "csv": lambda: duplicate_output.as_csv(report),
            "html": lambda: duplicate_output.as_html(report, collection.toolbox.table.thumbnail)}.get(output)
    if out is not None and text:
        out.write_text(text(), encoding="utf-8")
        console.print(f"{len(report.groups)} groups, {report.copies} copies: written to {out}")
    elif text:
        print(text())
    else:
        console.print(duplicate_output.as_table(report))
    if move_to is None:
        return
    moves, _ = _user_errors(lambda: collection.move_duplicates(report, move_to, dry_run=True))
    for source, target in moves:
        print(f"{'would move' if dry_run else 'move'} {source} -> {target}")
    if dry_run or not moves or not (yes or typer.confirm(f"Move these {len(moves)} files?")):
        return
    done, undo_file = _user_errors(lambda: collection.move_duplicates(report, move_to, dry_run=False))
    print(f"moved {len(done)} files; undo with: loupe --index {state.settings.index_name} duplicates --undo {undo_file}")


@app.command("stats")
def stats(
    count: Annotated[bool, typer.Option("--count", help="How many records (the default).")] = False,
    sum_of: Annotated[Optional[str], typer.Option("--sum", help="Add up total, price, file_size or item.")] = None,
    min_of: Annotated[Optional[str], typer.Option("--min", help="The least total, price, file_size or item.")] = None,
    max_of: Annotated[Optional[str], typer.Option("--max", help="The largest total, price, file_size or item.")] = None,
    items: Annotated[bool, typer.Option("--items", help="With --count: count the item lines receipts print.")] = False,
    latest: Annotated[bool, typer.Option("--latest", help="The latest date, and its records.")] = False,
    earliest: Annotated[bool, typer.Option("--earliest", help="The earliest date, and its records.")] = False,
    shop: Annotated[Optional[str], typer.Option(help="Only this shop, however it is typed (\"mr diy\").")] = None,
    year: Annotated[Optional[int], typer.Option(help="Only this year.")] = None,
    since: Annotated[Optional[str], typer.Option(help="Only from this day on (YYYY-MM-DD).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Only up to this day (YYYY-MM-DD).")] = None,
    group_by: Annotated[Optional[str], typer.Option(help="One figure per shop, month or year.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """An exact figure over the index, computed from its columns: e.g. `loupe stats --sum total --shop aeon
    --year 2018`, `loupe stats --count --group-by shop`, `loupe stats --max item --shop ikano` (the dearest item
    line). Prints the figure, its records and what was left out."""
    from loupe.api import Collection
    from loupe.store.filters import Condition
    from loupe.tools.document_fields import iso_date

    asked = [(measure, column) for measure, column, given in (
        ("count", None, count), ("sum", sum_of, sum_of), ("min", min_of, min_of), ("max", max_of, max_of),
        ("latest", None, latest), ("earliest", None, earliest)) if given]
    if len(asked) > 1:
        _fail("give one of --count, --sum, --min, --max, --latest, --earliest")
    measure, column = asked[0] if asked else ("count", None)
    if items and measure == "count":
        column = "item"
    days = {name: iso_date(day) if re.fullmatch(r"[\w /.\-]{6,20}", day) else None
            for name, day in (("--since", since), ("--until", until)) if day is not None}
    for name, day in days.items():
        if day is None:
            _fail(f"{name}: give a day such as 2018-03-15, not {(since if name == '--since' else until)[:40]!r}")
    conditions = [Condition(name, op, value) for name, op, value in (
        ("year", "=", year), ("date", ">=", days.get("--since")), ("date", "<=", days.get("--until")))
        if value is not None]
    collection = Collection(state.settings)
    result = _user_errors(lambda: collection.aggregate(measure, column, conditions, shop, group_by))
    if as_json:
        print(json.dumps(dataclasses.asdict(result), indent=2, ensure_ascii=False))
        return
    named = f" ({'; '.join(result.items[:3])})" if result.items else ""  # the dearest or cheapest item itself
    print(f"{measure}{f' of {result.column}' if result.column else ''} over {result.selected} records: "
          f"{_figure_text(result)}{named}")
    for group in result.groups:
        print(f"  {group.key}: {_figure_text(group)} ({len(group.ids)} records)")
    shown = _user_errors(lambda: collection.toolbox.table.get(
        result.ids[:STATS_ROWS], columns=["id", "file_name", "shop", "date", "total"]))
    for row in shown:
        total = f"{row['total']:.2f}" if row["total"] is not None else "-"
        print(f"  {row['id']}  {row['file_name']}  {row['shop'] or '-'}  {row['date'] or '-'}  {total}")
    if len(result.ids) > len(shown):
        print(f"  ... and {len(result.ids) - len(shown)} more records (--json lists them all)")
    for note in result.left_out:
        print(f"left out: {note}")


STATS_ROWS = 20  # records `loupe stats` lists under its figure


def _figure_text(figure) -> str:
    """A figure in words: the value and its currency, one value per currency, or none."""
    if figure.per_currency:
        return ", ".join(f"{_value_text(value)} {currency}" for currency, value in figure.per_currency.items())
    if figure.value is None:
        return "none"
    return _value_text(figure.value) + (f" {figure.currency}" if figure.currency else "")


def _value_text(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


@app.command("models")
def list_models() -> None:
    """The model backends of each kind, how to name them in loupe.toml, and the pip extra each needs."""
    import loupe.agent.llm  # noqa: F401 - registers the LLM backends
    from loupe.display import print_models
    from loupe.tools.models import Models  # registers the image, text, OCR and caption backends too

    print_models()
    choice = Models(state.settings).encoder_choice
    print(f"image encoder in use: {choice.setting} ({choice.reason})")


@app.command("eval")
def evaluate(
    query_set: Annotated[str, typer.Argument(help="A query-set file (e.g. evals/querysets/holidays.jsonl), or all.")],
    datasets: Annotated[Path, typer.Option(
        help="Folder the query set's paths are relative to (default: $LOUPE_DATASETS or ../shared/datasets).")] = DATASETS,
    compare: Annotated[Optional[str], typer.Option(
        help="Pipelines side by side. Retrieval sets: loupe, phash and image encoders such as "
             "efficientnet-lite0@tuned.pt or open_clip:ViT-B-32@clip.bin (default loupe,phash). OCR sets: OCR "
             "backends such as rapidocr,yolo+rapidocr@detector.pt (default: the configured one).")] = None,
    out: Annotated[Path, typer.Option(help="Where the JSON, Markdown and plots go.")] = Path("evals/results"),
    index: Annotated[Optional[Path], typer.Option("--index-dir", help="Folder for the indexes (default: <out>/index).")] = None,
) -> None:
    """Run query sets (retrieval, OCR or agent) and print their tables; `all` runs every shipped set."""
    from loupe.evals.tasks import query_set_files, report, run_query_file, write_outputs

    specs = [p.strip() for p in compare.split(",") if p.strip()] if compare else None
    datasets = datasets.expanduser().resolve()
    files = query_set_files(query_set)
    tables = []
    for path in files:
        print(f"{path.stem}:", flush=True)
        results = _user_errors(lambda path=path: run_query_file(
            path, specs if len(files) == 1 or _is_retrieval(path) else None, state.settings, datasets,
            index or out / "index"))
        tables.append(report(results))
        print(tables[-1])
        for written in write_outputs(results, out):
            print(f"wrote {written}")
    if len(files) > 1:
        (out / "summary.md").write_text("\n".join(tables), encoding="utf-8")
        print(f"wrote {out / 'summary.md'}")


def _is_retrieval(path: Path) -> bool:
    from loupe.evals.query_files import read_query_file

    return _user_errors(lambda: read_query_file(path))[0]["task"] == "retrieval"


@app.command("train-encoder")
def train_encoder(
    folder: Annotated[Path, typer.Argument(help="Pictures to learn from; sub-folders of several photos of one thing become one class.")],
    out: Annotated[Path, typer.Option(help="The checkpoint to write.")] = Path("encoder-tuned.pt"),
    epochs: Annotated[int, typer.Option(min=1)] = 5,
    batch_size: Annotated[int, typer.Option(min=2, help="Even: two augmented views of each picture.")] = 32,
    image_size: Annotated[int, typer.Option(min=64, help="Training crop size in pixels.")] = 224,
    learning_rate: Annotated[float, typer.Option()] = 1e-4,
    device: Annotated[str, typer.Option(help="auto (a GPU when torch sees one), cpu or cuda.")] = "auto",
) -> None:
    """Fine-tune the CNN image encoder (focal loss over augmented pairs) and write a checkpoint."""
    _user_errors(lambda: require_extra("train", "loupe train-encoder"))
    from loupe.tools.training.encoder_training import train_encoder as run_training

    report = _user_errors(lambda: run_training(folder, out, epochs=epochs, batch_size=batch_size,
                                               image_size=image_size, learning_rate=learning_rate, device=device,
                                               max_pixels=state.settings.max_pixels))
    for problem in report.skipped:
        print(f"skipped {problem}", file=sys.stderr)
    print(f"trained on {report.images} pictures ({report.classes} classes) in {report.seconds:.0f}s on {report.device}; "
          f"calibrated thresholds: similar {report.similar_cosine}, near-duplicate {report.near_duplicate_cosine}")
    print(f"wrote {out}. Use it with image_encoder_weights = \"{out.resolve()}\" under [models] in loupe.toml "
          f"(a new index), and compare it: loupe eval evals/querysets/holidays.jsonl "
          f"--compare loupe,efficientnet-lite0@{out}")


@app.command("train-detector")
def train_detector(
    labelled: Annotated[list[Path], typer.Argument(help="Datasets in the ICDAR layout: images/ and gt/ or box/ (e.g. ../shared/datasets/icdar2015).")],
    out: Annotated[Path, typer.Option(help="The YOLO weights file to write.")] = Path("text-detector.pt"),
    work: Annotated[Path, typer.Option(help="Where the YOLO dataset and training runs go.")] = Path("~/.loupe/train-detector"),
    model: Annotated[str, typer.Option(help="Start from a model yaml (random weights) or a .pt weights file.")] = "yolov8n.yaml",
    synthetic: Annotated[int, typer.Option(min=0, help="Rendered, blurred text pictures to add.")] = 200,
    backgrounds: Annotated[Optional[Path], typer.Option(help="Photos to render synthetic text on.")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    image_size: Annotated[int, typer.Option(
        min=32, help="Training size: labelled pictures are cut into squares of this size at their own resolution.")] = 640,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    device: Annotated[str, typer.Option(help="auto (a GPU when torch sees one), cpu, or a CUDA device number.")] = "auto",
) -> None:
    """Train a YOLO text detector for the yolo+rapidocr and yolo+textract OCR backends."""
    _user_errors(lambda: require_extra("train", "loupe train-detector"))
    from loupe.tools.training.text_detector_training import train_text_detector

    report = _user_errors(lambda: train_text_detector(
        labelled, out, work.expanduser(), model=model, synthetic=synthetic, backgrounds=backgrounds, epochs=epochs,
        image_size=image_size, batch_size=batch_size, device=device, max_pixels=state.settings.max_pixels))
    print(f"trained on {report.train_images} pictures and squares ({report.boxes} text boxes), "
          f"validated on {report.val_images}: "
          + ", ".join(f"{k} {v}" for k, v in report.metrics.items()))
    print(f"wrote {out}. Use it with ocr = \"yolo+rapidocr\" and ocr_detector_weights = \"{out.resolve()}\" "
          "under [models] in loupe.toml; measure it with python -m loupe.evals.ocr_eval --detector-weights " + str(out))


@app.command("train-clip")
def train_clip(
    captions: Annotated[Path, typer.Argument(help="CSV with image and caption columns (e.g. Flickr8k's captions.csv).")],
    images: Annotated[Path, typer.Option(help="Folder the CSV's image names are in.")],
    out: Annotated[Path, typer.Option(help="The weights file to write.")] = Path("clip-tuned.pt"),
    model: Annotated[str, typer.Option(help="open_clip architecture, e.g. ViT-B-32.")] = "",
    weights: Annotated[str, typer.Option(help="Starting weights file (none: random weights).")] = "",
    config: Annotated[str, typer.Option(help="Model-config JSON for an architecture open_clip does not know.")] = "",
    epochs: Annotated[int, typer.Option(min=1)] = 5,
    batch_size: Annotated[int, typer.Option(min=2)] = 32,
    learning_rate: Annotated[float, typer.Option()] = 1e-5,
    device: Annotated[str, typer.Option(help="auto (a GPU when torch sees one), cpu or cuda.")] = "auto",
) -> None:
    """Fine-tune an open_clip model on image-caption pairs with the contrastive loss."""
    _user_errors(lambda: (require_extra("train", "loupe train-clip"), require_extra("clip", "loupe train-clip")))
    from loupe.tools.training.clip_training import train_clip as run_training

    report = _user_errors(lambda: run_training(
        captions, images, out, architecture=model, weights=weights, config=config, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, device=device, offline=state.settings.offline,
        max_pixels=state.settings.max_pixels))
    for problem in report.skipped:
        print(f"skipped {problem}", file=sys.stderr)
    print(f"trained on {report.pairs} pairs ({report.images} images) in {report.seconds:.0f}s; text-to-image on "
          f"{report.held_out_images} held-out images: before {report.recall_before}, after {report.recall_after}")
    print(f"wrote {out}. Use it with image_encoder = \"open_clip:{model or Path(config).stem}\" and "
          f"image_encoder_weights = \"{out.resolve()}\"" + (f" and image_encoder_config = \"{config}\"" if config else "")
          + " under [models] in loupe.toml (a new index).")


@app.command("train-bridge")
def train_bridge(
    folders: Annotated[list[Path], typer.Argument(help="Folders of image-caption pairs: captions.csv (image, "
                                                       "caption) and images/ (e.g. ../shared/datasets/flickr8k).")],
    out: Annotated[Path, typer.Option(help="The map to write (.npz).")] = Path("text-bridge.npz"),
) -> None:
    """Learn the text bridge (words to EfficientNet-Lite0 vectors) from image-caption pairs, numpy only."""
    from loupe.tools.models import Models
    from loupe.tools.training.bridge import train_bridge as run_training

    report = _user_errors(lambda: run_training(folders, out, Models(state.settings), state.settings.offline,
                                               state.settings.max_pixels))
    for problem in report.skipped:
        print(f"skipped {problem}", file=sys.stderr)
    print(f"trained on {report.captions} captions of {report.photos} photos in {report.seconds:.0f}s "
          f"(ridge lambda {report.ridge_lambda:g}, prior weight {report.prior_weight:g}); held-out photos "
          f"(k-fold): {report.held_out_recall}")
    print(f"wrote {out}. Loupe ships its own map as tools/models/text_bridge.npz; replace that file to use this one.")


@app.command()
def calibrate(
    encoder: Annotated[str, typer.Option(help="An image encoder as loupe.toml names it (e.g. open_clip:ViT-B-32@"
                                              "laion2b_s34b_b79k), or loupe for the configured one.")] = "loupe",
    datasets: Annotated[Path, typer.Option(
        help="Holds holidays/ and flickr8k/ (default: $LOUPE_DATASETS or ../shared/datasets).")] = DATASETS,
    sample: Annotated[int, typer.Option(min=2, help="Photos copied for the near-duplicate level.")] = 200,
) -> None:
    """Measure an image encoder's near-duplicate, similar and text-match cosines on Holidays and Flickr8k, half
    against half, and print the loupe.toml lines that use them."""
    from loupe.evals.encoder_calibration import calibration_report

    print(_user_errors(lambda: calibration_report(encoder, datasets.expanduser(), sample, state.settings)))


def _user_errors(action):
    """Run ``action``; a LoupeError, or a full disk, becomes one line on stderr and exit status 1."""
    try:
        return action()
    except LoupeError as exc:
        _fail(str(exc))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        _fail(f"disk full ({exc.filename or 'writing'}): nothing already indexed is lost; free some space and run "
              "the same command again")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
