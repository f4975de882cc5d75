"""`edgeship-runtime demo`: a live camera demo that a headless board shows in a browser.

sources (camera, video, folder, pattern) -> pipeline (threads and bounded queues) -> overlay
(the result drawn over the frame) -> viewer (MJPEG stream and stats page); `app.Demo` runs
them and writes the stats.
"""

from edgeship_runtime.demo.app import STATS_SCHEMA, Demo, DemoOptions
from edgeship_runtime.demo.overlay import BANNER_PX, annotate, classify
from edgeship_runtime.demo.pipeline import STAGES, Frame, Pipeline, StageQueue, Timings
from edgeship_runtime.demo.sources import FolderSource, Source, TestPattern, VideoSource, open_source
from edgeship_runtime.demo.viewer import parse_listen, serve, viewer_page

__all__ = ["BANNER_PX", "STAGES", "STATS_SCHEMA", "Demo", "DemoOptions", "FolderSource", "Frame", "Pipeline", "Source",
           "StageQueue", "TestPattern", "Timings", "VideoSource", "annotate", "classify", "open_source", "parse_listen",
           "serve", "viewer_page"]
