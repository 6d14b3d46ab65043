"""The one list of the app's pages and the map of the field they fill.

The router builds ``st.navigation`` from :data:`PAGES`; the overview page draws the knowledge x
mode map from :data:`MAP`. A map cell links the pages (and the views of a page) that show its
methods; a cell with none yet, or a slug with no page file, is shown as "coming" rather than
linked to an empty page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES_DIR = ROOT / "pages"
DEFAULT = "overview"  # the page shown at the app's root URL


@dataclass(frozen=True)
class PageInfo:
    slug: str  # URL path, e.g. "temperature" -> /temperature
    title: str
    family: str  # sidebar group
    icon: str  # a Material symbol, ":material/name:"
    file: str  # under pages/
    # the query parameters the page reads (its URL-bound controls): a lesson step's link may set
    # these and no others; tests/test_lesson.py checks each against the page's code
    params: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.file

    @property
    def url(self) -> str:
        """The page's address under the app root. The default page lives at the root itself:
        Streamlit gives it no path of its own ("/overview" only forwards there, see the router)."""
        return "" if self.slug == DEFAULT else self.slug

    @property
    def exists(self) -> bool:
        return self.path.is_file()


PAGES: tuple[PageInfo, ...] = (
    PageInfo("overview", "Overview", "Start here", ":material/hub:", "overview.py"),
    PageInfo("lesson", "Guided lesson", "Start here", ":material/school:", "lesson.py", ("step",)),
    PageInfo(
        "temperature",
        "Temperature & soft targets",
        "Response-based",
        ":material/device_thermostat:",
        "temperature.py",
        ("teacher", "src", "digit", "idx", "z", "T", "log", "eps", "ep_ctkd", "ep_ttm"),
    ),
    PageInfo(
        "kd-loss",
        "The distillation loss",
        "Response-based",
        ":material/functions:",
        "kd_loss.py",
        ("teacher", "digit", "idx", "alpha", "T"),
    ),
    PageInfo(
        "dkd",
        "Decoupled KD & DIST",
        "Response-based",
        ":material/call_split:",
        "dkd.py",
        (
            "digit",
            "idx",
            "alpha",
            "beta",
            "T",
            "ep_dkd",
            "sure",
            "ep_dist",
            "ep_stronger",
            "ep_zscore",
            "nkd_gamma",
            "ep_nkd",
            "ep_wsld",
        ),
    ),
    PageInfo(
        "label-smoothing",
        "Label smoothing & the teacher",
        "Response-based",
        ":material/blur_on:",
        "smoothing.py",
        ("digits", "split", "digit", "idx", "T", "ep_smooth"),
    ),
    PageInfo(
        "zero-shot",
        "Zero-shot distillation",
        "Response-based",
        ":material/auto_awesome:",
        "zero_shot.py",
        ("digit", "beta", "draw", "ep_zero"),
    ),
    PageInfo(
        "consistent-teaching",
        "Patient & consistent teachers",
        "Response-based",
        ":material/sync_alt:",
        "consistent.py",
        ("digit", "idx", "draw", "ep_consistent"),
    ),
    PageInfo(
        "local-logits",
        "Local logits: SD-KD",
        "Response-based",
        ":material/grid_4x4:",
        "local_logits.py",
        ("img", "scales", "T", "ep_sdd", "sdd_who", "sdd_img"),
    ),
    PageInfo(
        "deit",
        "Vision transformers: DeiT",
        "Transformer era",
        ":material/token:",
        "deit.py",
        ("digit", "idx", "kind", "tau", "lam", "ep_deit", "student", "img"),
    ),
    PageInfo(
        "language-models",
        "Distilling language models",
        "Transformer era",
        ":material/translate:",
        "lm.py",
        ("doc", "pos", "T", "sep", "weight", "beta", "view", "ep_lm"),
    ),
    PageInfo(
        "attention-relations",
        "Inside a transformer: MiniLM",
        "Transformer era",
        ":material/grid_on:",
        "attention.py",
        ("doc", "block", "rel", "heads", "who", "srel", "ep_minilm"),
    ),
    PageInfo(
        "hidden-states",
        "Inside a transformer: TinyBERT",
        "Transformer era",
        ":material/stacks:",
        "hidden.py",
        ("map", "ep_tinybert"),
    ),
    PageInfo(
        "distilbert",
        "Half the layers: DistilBERT",
        "Transformer era",
        ":material/content_cut:",
        "distilbert.py",
        ("keep", "ep_distilbert"),
    ),
    PageInfo(
        "speculative",
        "Speculative decoding",
        "Transformer era",
        ":material/fast_forward:",
        "speculative.py",
        ("alpha", "gamma", "draft", "ep_spec"),
    ),
    PageInfo(
        "relations",
        "Relations: the shape of a batch",
        "Relation-based",
        ":material/scatter_plot:",
        "geometry.py",
        (
            "batch",
            "n",
            "seed",
            "sel",
            "self",
            "angle",
            "scale",
            "shift",
            "epoch",
            "who",
            "ep_rkd",
            "ep_pkt",
            "cc_g",
            "cc_p",
            "ep_cc",
            "cc_who",
        ),
    ),
    PageInfo(
        "channels",
        "Relations between channels",
        "Relation-based",
        ":material/grid_view:",
        "channels.py",
        ("img", "ch", "ep_ickd", "ickd_ep", "ickd_who"),
    ),
    PageInfo(
        "projector",
        "The projector's spectrum",
        "Feature-based",
        ":material/transform:",
        "projector.py",
        ("ds", "dt", "lr", "steps", "raw", "variant", "ep_mgd", "mgd_draw", "ep_srrl", "ep_simkd"),
    ),
    PageInfo(
        "features",
        "Hints & attention maps",
        "Feature-based",
        ":material/visibility:",
        "hints.py",
        (
            "img",
            "epoch",
            "test",
            "ep_vid",
            "vid_who",
            "vid_epoch",
            "ab_mu",
            "ep_ab",
            "ab_who",
            "ab_epoch",
            "ofd_m",
            "ofd_unit",
            "ep_ofd",
            "ep_ft",
            "ep_fsp",
            "fsp_pair",
            "fsp_who",
            "fsp_ep",
            "ep_review",
            "review_ep",
        ),
    ),
    PageInfo(
        "class-maps",
        "Class activation maps",
        "Feature-based",
        ":material/center_focus_strong:",
        "class_maps.py",
        ("img", "r", "norm", "bin", "ep_cat", "cat_who", "cat_img"),
    ),
    PageInfo(
        "modes",
        "Training modes",
        "Training modes",
        ":material/groups:",
        "modes.py",
        ("mode", "img"),
    ),
    PageInfo(
        "lab",
        "Distillation lab",
        "Experiments",
        ":material/science:",
        "lab.py",
        ("mode", "preset", "profile", "run"),
    ),
    PageInfo(
        "reproductions",
        "Every result, seed by seed",
        "Experiments",
        ":material/fact_check:",
        "reproductions.py",
        ("fam",),
    ),
    PageInfo(
        "runs",
        "Run history",
        "Experiments",
        ":material/history:",
        "runs.py",
        ("status", "preset", "method", "compare", "curve", "show"),
    ),
)


@dataclass(frozen=True)
class MapLink:
    """A map cell's way into a page, opened on the view that shows the cell's methods."""

    slug: str
    label: str | None = None  # None: the page's title
    # query parameters that open the page on one of its views (each one of the page's params)
    query: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MapCell:
    knowledge: str  # "Response", "Feature", "Relation"
    mode: str  # "Offline", "Online", "Self"
    what: str  # what is transferred, one line
    methods: str  # the classic methods in this cell
    links: tuple[MapLink, ...] = ()  # the pages that show them; none yet: "coming"


KNOWLEDGE = ("Response", "Feature", "Relation")
MODES = ("Offline", "Online", "Self")


def _mode(view: str, label: str) -> MapLink:
    """The training-modes page opened on one of its views (``?mode=``)."""
    return MapLink("modes", label, (("mode", view),))


MAP: tuple[MapCell, ...] = (
    MapCell(
        "Response",
        "Offline",
        "the teacher's softened class probabilities",
        "KD (Hinton 2015), logit matching (Buciluǎ 2006), DKD (Zhao 2022), DIST (Huang 2022), "
        "logit standardisation (Sun 2024), curriculum temperature (Li 2023), scale decoupled "
        "distillation, SD-KD (Wei 2024), transformed "
        "teacher matching, TTM (Zheng 2024), normalized KD "
        "(Yang 2023), weighted soft labels, WSLD (Zhou 2021), "
        "DeiT distillation "
        "token (Touvron 2021), ensembles of teachers (Hinton 2015), teacher assistants "
        "(Mirzadeh 2020), hand-made teachers (Yuan 2020), label-smoothed teachers (Müller 2019), "
        "data-free Data Impressions (Nayak 2019), consistent and patient teaching (Beyer 2022), "
        "DistilBERT's soft targets (Sanh 2019)",
        (
            MapLink("temperature"),
            MapLink("kd-loss"),
            MapLink("dkd"),
            MapLink("label-smoothing"),
            MapLink("zero-shot"),
            MapLink("consistent-teaching"),
            MapLink("local-logits"),
            MapLink("deit"),
            MapLink("language-models"),
            MapLink("distilbert"),
            MapLink("speculative"),
            _mode("ensemble", "Several teachers"),
            _mode("teacher-assistant", "A teacher assistant"),
            _mode("teacher-free", "Virtual teachers"),
        ),
    ),
    MapCell(
        "Response",
        "Online",
        "peers' predictions, learned together",
        "Deep mutual learning (Zhang 2018)",
        (_mode("mutual-learning", "Mutual learning"),),
    ),
    MapCell(
        "Response",
        "Self",
        "an earlier generation's predictions, or soft labels it makes itself",
        "Born-Again Networks (Furlanello 2018), USKD's own confidence and Zipf labels (Yang 2023)",
        (_mode("born-again", "Born-again networks"), _mode("uskd", "Its own soft labels")),
    ),
    MapCell(
        "Feature",
        "Offline",
        "intermediate activations, attention or class activation maps, or a transformer's "
        "hidden states",
        "FitNets (Romero 2015), attention transfer (Zagoruyko 2017), class attention transfer, "
        "CAT-KD (Guo 2023), VID (Ahn 2019), AB (Heo "
        "2019), the overhaul of feature distillation, OFD (Heo 2019), factor transfer (Kim "
        "2018), FSP (Yim 2017), ReviewKD (Chen 2021), projectors "
        "(Miles 2024), masked generative distillation (Yang 2022), the teacher's classifier "
        "reading the student's feature, SRRL (Yang 2021), or kept by the student, SimKD (Chen "
        "2022), TinyBERT's layer-to-layer "
        "hidden states (Jiao 2020), DistilBERT's start from the teacher's layers and its cosine "
        "loss (Sanh 2019)",
        (
            MapLink("features"),
            MapLink("class-maps"),
            MapLink("projector"),
            MapLink("hidden-states"),
            MapLink("distilbert"),
        ),
    ),
    MapCell(
        "Feature",
        "Online",
        "features shared while both nets train",
        "online adversarial feature distillation, AFD (Chung 2020)",
        (_mode("online-features", "Adversarial features (AFD)"),),
    ),
    MapCell(
        "Feature",
        "Self",
        "deep layers teach shallow ones",
        "self-distillation (Zhang 2019)",
        (_mode("deep-supervision", "Own exits"),),
    ),
    MapCell(
        "Relation",
        "Offline",
        "distances and angles between examples, between a layer's channels, or between "
        "positions inside a transformer",
        "RKD (Park 2019), PKT (Passalis 2018), CC (Peng 2019), CRD (Tian 2020), inter-channel "
        "correlation, ICKD (Liu 2021), neuron selectivity transfer, NST (Huang 2017), MiniLM's "
        "self-attention relations (Wang 2020, 2021)",
        (MapLink("relations"), MapLink("channels"), MapLink("attention-relations")),
    ),
    MapCell(
        "Relation",
        "Online",
        "relations agreed between peers",
        "mutual contrastive learning, MCL (Yang 2022)",
        (_mode("mutual-contrastive", "Contrastive relations (MCL)"),),
    ),
    MapCell(
        "Relation",
        "Self",
        "a model's own similarity structure",
        "class-wise self-KD, CS-KD (Yun 2020): two images of a class made alike in its eyes",
        (_mode("class-wise", "Class-wise self-KD"),),
    ),
)


def page(slug: str | None) -> PageInfo | None:
    return next((p for p in PAGES if p.slug == slug), None)


def available(slug: str | None) -> bool:
    p = page(slug)
    return p is not None and p.exists


def mode_views() -> dict[str, dict[str, str]]:
    """The training-modes page's views as the map places them: {mode: {view: knowledge}}, modes
    in the map's order with Offline last (the page's views start where no teacher is trained
    first)."""
    placed: dict[str, dict[str, str]] = {m: {} for m in (*MODES[1:], MODES[0])}
    for cell in MAP:
        for link in cell.links:
            for key, view in link.query:
                if link.slug == "modes" and key == "mode":
                    placed[cell.mode][view] = cell.knowledge
    return {m: views for m, views in placed.items() if views}


# Where each preset's run is drawn in full, with the figures only its result carries (DIST's
# teacher sizes, the consistency curves, the relation heat maps): the page, opened on the view
# that shows it. The lab and the run history link there from any run of the preset. Not named
# here, Hinton's demonstrations, his sweeps and two relation methods are drawn in the lab itself.
_MODE_PRESETS = ("mutual-learning", "online-features", "mutual-contrastive", "born-again",
                 "class-wise", "deep-supervision", "ensemble", "teacher-free",
                 "teacher-assistant", "uskd")  # fmt: skip
_LM_PRESETS = ("word-vs-sequence-kd", "on-policy-kd")
DRAWN_ON: dict[str, MapLink] = {
    "dkd-mnist": MapLink("dkd"),
    "dist-mnist": MapLink("dkd"),
    "dist-stronger": MapLink("dkd"),
    "zscore-mnist": MapLink("dkd"),
    "nkd-mnist": MapLink("dkd"),
    "wsld-mnist": MapLink("dkd"),
    "ctkd-mnist": MapLink("temperature"),
    "ttm-mnist": MapLink("temperature"),
    "smooth-teacher": MapLink("label-smoothing"),
    "zero-shot-mnist": MapLink("zero-shot"),
    "consistent-teaching": MapLink("consistent-teaching"),
    "rkd-mnist": MapLink("relations"),
    "pkt-mnist": MapLink("relations"),
    "cc-mnist": MapLink("relations"),
    "ickd-mnist": MapLink("channels"),
    "projector-normalisation": MapLink("projector"),
    "fitnets-mnist": MapLink("features"),
    "vid-mnist": MapLink("features"),
    "ab-mnist": MapLink("features"),
    "ofd-mnist": MapLink("features"),
    "ft-mnist": MapLink("features"),
    "fsp-mnist": MapLink("features"),
    "review-mnist": MapLink("features"),
    "cat-mnist": MapLink("class-maps"),
    "sdd-mnist": MapLink("local-logits"),
    "mgd-mnist": MapLink("projector"),
    "srrl-mnist": MapLink("projector"),
    "simkd-mnist": MapLink("projector"),
    "attention-transfer": MapLink("features"),
    "deit-mnist": MapLink("deit"),
    "speculative-draft": MapLink("speculative"),
    "minilm-relations": MapLink("attention-relations"),
    "tinybert-hidden": MapLink("hidden-states"),
    "distilbert": MapLink("distilbert"),
    **{v: MapLink("language-models", None, (("view", v),)) for v in _LM_PRESETS},
    **{m: MapLink("modes", None, (("mode", m),)) for m in _MODE_PRESETS},
}

# The presets drawn in the lab itself, by the family of the field they belong to.
LAB_DRAWN: dict[str, str] = {
    **dict.fromkeys(
        ("hinton-mnist", "omitted-3", "only-7-8", "temperature-sweep", "alpha-sweep"),
        "Response-based",
    ),
    **dict.fromkeys(("similarity-mnist", "crd-mnist"), "Relation-based"),
    "fitnets-mlp": "Feature-based",  # the benchmark's FitNet; the hints page draws fitnets-mnist
}


def preset_home(name: str) -> tuple[MapLink, str] | None:
    """Where a preset's run is drawn in full (its page, or the lab opened on it) and the family
    of the field it belongs to (the page's sidebar group); None for an unknown preset."""
    if name in DRAWN_ON:
        link = DRAWN_ON[name]
        return link, page(link.slug).family
    if name in LAB_DRAWN:
        return MapLink("lab", None, (("preset", name),)), LAB_DRAWN[name]
    return None


def families() -> list[str]:
    """The families of the field, in the sidebar's order (the groups of the concept pages)."""
    return list(
        dict.fromkeys(p.family for p in PAGES if p.family not in ("Start here", "Experiments"))
    )
