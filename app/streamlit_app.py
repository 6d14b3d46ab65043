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
for info in PAGES:
    if info.exists:
        groups.setdefault(info.family, []).append(
            st.Page(
                str(info.path),
                title=info.title,
                icon=info.icon,
                url_path=info.slug,
                default=info.slug == DEFAULT,
            )
        )
current = st.navigation(groups)
present.frame(current)  # presenter mode and the lesson strip (app/present.py)
begin_claims()
with page_run():  # one page run at a time, on one torch thread: see app/ui.py
    current.run()
drop_unclaimed(APP_PARAMS)  # link values no control of this page read: see app/ui.py
settle_memory(current.url_path)  # after each page's first run: see app/ui.py
