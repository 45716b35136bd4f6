"""The page's actions without a browser: what each hands back, by component."""

from types import SimpleNamespace


class Page:
    compare_image, compare_text, compare_status = "compare_image", "compare_text", "status"


class Demo:
    def compare(self, a, b, step, layer_a, layer_b):
        return SimpleNamespace(image=(a, b, step), text=f"{layer_a} vs {layer_b}")


class Models:
    def get(self, name):
        return Demo()


def test_compare_is_redrawn_when_b_is_the_new_current_run():
    from probe_core.serve.ui.forms import CompareForm
    from probe_core.serve.ui.look import LookActions

    look = LookActions(Page(), Models(), None)
    a, b, edit = (SimpleNamespace(done=True) for _ in range(3))
    out = look.refresh_compare(CompareForm((a, None), b, 3, "best", "up1.1"))
    assert out["compare_image"] == (a, b, 3) and out["compare_text"] == "best vs up1.1"
    # A kept with its edit as B, no pair kept, or a run still streaming: nothing redrawn
    for pair, run in (((a, edit), b), (None, b), ((a, None), SimpleNamespace(done=False))):
        out = look.refresh_compare(CompareForm(pair, run, 3, "best", "best"))
        assert all(v.get("__type__") == "update" and len(v) == 1 for v in out.values()), out
