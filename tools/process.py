"""Process-wide settings, made once by each entry point (the CLI, the UI, the eval scripts, the tests).

Importing a Loupe module changes nothing outside it; whatever must hold for the whole process is here,
so a reader finds every global switch in one place and a library user can choose to call it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import faiss
from PIL import Image
from threadpoolctl import threadpool_limits


def configure_process(home: Path | None = None) -> None:
    """Set what Loupe needs process-wide; calling it again changes nothing.

    * OpenCV and faiss run single-threaded: local features are many small calls, where threads cost more
      than they save (measured in tools/local_features.py); verification spreads the pairs over the cores.
    * numpy's BLAS runs single-threaded too: Loupe's products are small (the text bridge's 384 x 1280 map),
      and a threaded BLAS keeps its threads spinning after each one, taking the cores from what runs next:
      at 10,000 rows the text query's p50 went from about 140 to 118 ms with one BLAS thread.
    * Pillow's DecompressionBombWarning is silenced: tools/image_file.py checks every image's size
      against Loupe's own limit before decoding, so the warning is noise.
    * ultralytics is kept offline (``YOLO_OFFLINE``) with its settings under Loupe's home, where
      tools/models/text_detection.py puts the font it would otherwise download.
    """
    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)
    threadpool_limits(1, user_api="blas")
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    folder = home or Path(os.environ.get("LOUPE_HOME", "~/.loupe")).expanduser()
    os.environ.setdefault("YOLO_CONFIG_DIR", str(folder / "ultralytics"))
    os.environ["YOLO_OFFLINE"] = "1"
