"""scene-probe: the Space's entry. Builds the page (probe_core.serve.ui) and launches it.

    python app.py            # the embedded tiny-scenes model, offline, on CPU

Each session picks its model (the embedded one, a Stable Diffusion hub id in the local cache, or
a diffusers folder, where the deployment allows it); one that cannot be loaded leaves the
session on the model it had. The endpoints are listed in probe_core/serve/ui/build.py.
"""

import probe_core.offline  # noqa: F401  (before gradio imports the hub client)

from probe_core.serve.deployment import Deployment
from probe_core.serve.model_choice import ModelChoice
from probe_core.serve.ui.build import LAUNCH, build_app
from probe_core.settings import EMBEDDED_MODEL, shown_path

MAX_UPLOAD = "1mb"  # the largest upload (an image to probe, a painted mask) accepted

__all__ = ["build_app", "launch"]


def launch(deployment: Deployment) -> None:
    try:
        models = ModelChoice(allow_any=deployment.allow_any_model,
                             max_steps=deployment.max_steps)
    except Exception as err:  # the app cannot start without its model: one line, no traceback
        raise SystemExit(
            f"scene-probe: the embedded model in {shown_path(EMBEDDED_MODEL)} cannot be loaded "
            f"({type(err).__name__}: {str(err)[:200]}). Restore it (git checkout "
            "weights/tiny-scenes) or train it (scene-probe train-model).") from None
    build_app(models).queue(default_concurrency_limit=2, max_size=deployment.max_queue).launch(
        server_name=deployment.server_name, max_file_size=MAX_UPLOAD, **LAUNCH)


if __name__ == "__main__":
    launch(Deployment.from_env())
