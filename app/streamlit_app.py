"""Entry point: ``streamlit run app/streamlit_app.py``. A small router, nothing else."""

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so pages can import kdcore and app without installing them
    sys.path.insert(0, str(ROOT))

from app import present  # noqa: E402
from app.catalog import DEFAULT, PAGES  # noqa: E402
from app.lesson import APP_PARAMS  # noqa: E402
from app.ui import begin_claims, drop_unclaimed, page_run, settle_memory  # noqa: E402

# A local file, not a Material symbol: Streamlit fetches those favicons from a font host,
# which fails offline. An SVG path is sent inline (a data URL), so nothing is fetched at all.
FAVICON = ROOT / "assets" / "static" / "favicon.svg"
st.set_page_config(
    page_title="Knowledge distillation, explained", page_icon=str(FAVICON), layout="wide"
)

groups: dict[str, list] = {}
home = None
for info in PAGES:
    if info.exists:
        page = st.Page(
            str(info.path),
            title=info.title,
            icon=info.icon,
            # the default page is served at the root; the name it reserves is not its slug,
            # which goes to the hidden page below
            url_path=f"{info.slug}-root" if info.slug == DEFAULT else info.slug,
            default=info.slug == DEFAULT,
        )
        groups.setdefault(info.family, []).append(page)
        home = page if info.slug == DEFAULT else home


def to_home() -> None:
    """``/overview``: Streamlit serves the default page at the root alone, so its name would be
    "page not found". A hidden page of that name sends the visitor there, link values kept."""
    st.switch_page(home, query_params=st.query_params.to_dict())


if home is not None:
    next(iter(groups.values())).append(
        st.Page(to_home, title=home.title, url_path=DEFAULT, visibility="hidden")
    )
# every page listed: collapsed, the menu hid its last four (the lab and the run history among
# them) behind "View more"
current = st.navigation(groups, expanded=True)
present.frame(current)  # presenter mode and the lesson strip (app/present.py)
begin_claims()
with page_run():  # one page run at a time, on one torch thread: see app/ui.py
    current.run()
drop_unclaimed(APP_PARAMS)  # link values no control of this page read: see app/ui.py
settle_memory(current.url_path)  # after each page's first run: see app/ui.py
