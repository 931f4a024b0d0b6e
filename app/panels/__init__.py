"""The workbench's panels, one module each: its gradio layout (`layout(ui)`, which puts its
components on `ui`) and its handlers (`wire(ui)`). app/main.py places the layouts and wires them;
app/panels/ui.py holds what all handlers share (the asking session, error messages, the outputs
every edit redraws). The behaviour behind each panel is in a gradio-free module of app/.

  meetings.py  demo, upload, meeting list, summary     run.py       speaker count, Run, Stop
  models.py    model list and box, Hub sharing          timeline.py  the timeline, clicks, zoom, pan
  keys.py      keyboard shortcuts                       listen.py    players, solo, compare
  edit.py      the selected segment's fields, buttons   speakers.py  rename, merge
  review.py    the reviewed part                        segments.py  the segments table
  export.py    exports and RTTM import                  retrain.py   retraining on the corrections
"""
