"""`edgeship-runtime demo`: a live camera demo that a headless board shows in a browser.

sources (camera, video, folder, pattern) -> pipeline (threads and bounded queues) -> overlay
(the result drawn over the frame) -> viewer (MJPEG stream and stats page); `app.Demo` runs
them and writes the stats.
"""

from edgeship_runtime.demo.app import STATS_SCHEMA, Demo, DemoOptions, TextModel
from edgeship_runtime.demo.overlay import BANNER_PX, annotate, draw_boxes
from edgeship_runtime.demo.pipeline import STAGES, TEXT_STAGES, Frame, Pipeline, StageQueue, Timings
from edgeship_runtime.demo.sources import FolderSource, Source, TestPattern, VideoSource, open_source
from edgeship_runtime.demo.viewer import parse_listen, serve, viewer_page

__all__ = ["BANNER_PX", "STAGES", "TEXT_STAGES", "STATS_SCHEMA", "Demo", "DemoOptions", "FolderSource", "Frame", "Pipeline", "Source",
           "StageQueue", "TestPattern", "TextModel", "Timings", "VideoSource", "annotate", "draw_boxes", "open_source", "parse_listen",
           "serve", "viewer_page"]
