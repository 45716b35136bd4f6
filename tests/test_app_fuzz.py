"""A hostile visitor through gradio_client: every endpoint with wrong types, out-of-range, huge
and unicode values, before and after runs of several lengths; and eight visitors at once."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import APP_PROMPT as PROMPT

BAD = [None, "abc", "NaN", "-inf", 1e308, [], {"a": 1}, "🙂" * 20, "x" * 20_000, -1, 2.5]
GOOD = {  # endpoint -> one good argument list
    "/generate": [PROMPT, 3, 2, 4.0, "best", 0.6, 1, 2, "a blue box", "Euler", True],
    "/scrub": [1, "best", 0.6],
    "/switch_layer": [1, "best", 0.6],
    "/word_map": ["sphere", "all", 1, "best"],
    "/intervene": [8, 0, 1.0, 0.0, 0.2, 1, 1, "guided", "flip", None, 2, 0],
    "/keep_as_a": [1, "best", "best"],
    "/compare": [1, "best", "best"],
    "/compare_edit": [1, "best", "best"],
    "/probe_image": [None, 7100003, "", "best"],
    "/export": ["best"],
    "/load_model": ["tiny-scenes"],
}
# the paint canvas and the uploaded image reach the handler through gradio's own image checks
# (files it uploaded, never a path): a bad value there is refused by gradio, tested below
GRADIO_CHECKED = {("/intervene", 9), ("/probe_image", 0)}
# a refused value: the status line says so and why
REFUSED = re.compile(r"\*\*(Not done:|Could not load that model\.)\*\* \S")
DONE = {  # endpoint -> its status line when it did what was asked (a bad value it can use)
    "/generate": r"step (\d+) of \1 \(.* · done: drag the step slider to scrub",
    "/scrub": r"step \d+ of \d+ \(t = ",
    "/switch_layer": r"step \d+ of \d+ \(t = ",
    "/word_map": r"Pick a word of the prompt to see where it attends\.$",
    "/intervene": r"Edit done: see the score card below\.$",
    "/keep_as_a": r"Compared A and B\.$",
    "/compare": r"Compared A and B\.$",
    "/compare_edit": r"Compared A and B\.$",
    "/probe_image": r"Probed the image at every step in [\d.]+ s\.$",
    "/export": r"Exported \d+ files\.$",
    "/load_model": r"Model: \*\*",
}


def _fuzz(client, endpoints=tuple(GOOD)):
    """Every argument of every endpoint replaced by every bad value: each call is answered, with
    a message in the status line where the value was refused, else with the status line of the
    endpoint done as asked."""
    answered = 0
    for endpoint in endpoints:
        args = GOOD[endpoint]
        for i in range(len(args)):
            if (endpoint, i) in GRADIO_CHECKED:
                continue
            for bad in BAD:
                call = list(args)
                call[i] = bad
                out = client.predict(*call, api_name=endpoint)
                status = out[-1] if isinstance(out, (list, tuple)) else out
                assert isinstance(status, str) and status, (endpoint, i, bad)
                assert REFUSED.match(status) or re.match(DONE[endpoint], status, re.S), (
                    endpoint, i, bad, status[:300])
                assert len(status) < 5000, (endpoint, i, "message not bounded")
                answered += 1
    return answered


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 3 minutes on an idle machine; far longer on a loaded one
def test_every_endpoint_answers_every_bad_value_before_and_after_runs(client):
    assert _fuzz(client) > 250  # before any run
    for steps in (2, 1, 5):
        out = client.predict(PROMPT, 3, steps, 4.0, "best", 0.6, 1, 4, api_name="/generate")
        assert f"step {steps} of {steps}" in out[-1] and "done" in out[-1]
        # everything after the first run; then what depends on the run's length
        _fuzz(client, tuple(GOOD) if steps == 2 else ("/scrub", "/intervene", "/compare"))
    # the session and the server still work
    out = client.predict(PROMPT, 4, 3, 4.0, "best", 0.6, 1, 4, api_name="/generate")
    assert "done" in out[-1]
    assert "Dice with target" in client.predict(8, 0, 1.0, 0.0, 0.2, 1, 2, "guided",
                                                api_name="/intervene")[-2]


def test_refusals_name_the_argument(client):
    def status(endpoint, *args):
        return client.predict(*args, api_name=endpoint)[-1]

    assert "seed must be a number" in status("/generate", PROMPT, "abc", 2, 4.0, "best", 0.6, 1, 2)
    assert "steps must be" in status("/generate", PROMPT, 1, None, 4.0, "best", 0.6, 1, 2)
    assert "guidance must be" in status("/generate", PROMPT, 1, 2, "NaN", "best", 0.6, 1, 2)
    assert "prompt must be text" in status("/generate", 5, 1, 2, 4.0, "best", 0.6, 1, 2)
    assert "at most 1000" in status("/generate", "red " * 2000, 1, 2, 4.0, "best", 0.6, 1, 2)
    assert "opacity must be" in status("/generate", PROMPT, 1, 2, 4.0, "best", "inf", 1, 2)
    assert "done" in status("/generate", PROMPT, 1, 2, 4.0, "best", 0.6, 1, 2)
    # step numbers as the page shows them, from 1
    assert "step must be between 1 and 2" in status("/scrub", 3, "best", 0.6)
    assert "step must be between 1 and 2" in status("/scrub", 0, "best", 0.6)
    assert "first edited step must be between 1 and 2" in status(
        "/intervene", 8, 0, 1.0, 0.0, 0.2, 5, 5, "guided")
    assert "last edited step must be between 2 and 2" in status(
        "/intervene", 8, 0, 1.0, 0.0, 0.2, 2, 1, "guided")
    assert "move x must be a number" in status("/intervene", "far", 0, 1.0, 0.0, 0.2, 1, 1,
                                               "guided")
    assert "method must be one of" in status("/intervene", 8, 0, 1.0, 0.0, 0.2, 1, 1, ["x"])
    assert "drawn target must be one of" in status(
        "/intervene", 8, 0, 1.0, 1.0, 0.2, 1, 1, "guided", "rotate")
    assert "depth shift y must be a number" in status(
        "/intervene", 0, 0, 1.0, 0.0, 0.2, 1, 1, "guided", "swap", None, 0, "up")


def test_the_step_sliders_follow_the_run(client):
    def value(update):
        return update["value"] if isinstance(update, dict) else update

    out = client.predict(PROMPT, 1, 2, 4.0, "best", 0.6, 1, 4, api_name="/generate")
    first, last = value(out[6]), value(out[7])
    assert (first, last) == (1, 2)  # the default steps 1-4 clamped to a 2-step run
    assert out[6]["maximum"] == out[7]["maximum"] == 2
    assert "Dice with target" in client.predict(8, 0, 1.0, 0.0, 0.2, first, last, "guided",
                                                api_name="/intervene")[-2]
    out = client.predict(PROMPT, 1, 5, 4.0, "best", 0.6, 1, 4, api_name="/generate")
    assert (value(out[6]), value(out[7])) == (1, 4)


def test_stop_after_a_run_keeps_it(client):
    assert "Stopped before the first step" in client.predict(api_name="/stop")[0]
    client.predict(PROMPT, 1, 2, 4.0, "best", 0.6, 1, 2, api_name="/generate")
    status, edit_status = client.predict(api_name="/stop")
    assert "Nothing is running" in status and "as it was before the edit" in edit_status
    assert "step 2 of 2" in client.predict(2, "best", 0.6, api_name="/scrub")[-1]


def test_eight_visitors_at_once_each_get_their_own_run(client):
    from gradio_client import Client

    clients = [client] + [Client(client.src, verbose=False) for _ in range(7)]
    words = ["red sphere", "blue box", "green cylinder", "yellow sphere", "white box",
             "purple cylinder", "orange sphere", "cyan box"]

    def visit(k):
        c = clients[k]
        out = c.predict(f"a large {words[k]} on a gray plain floor", k, k + 1, 4.0, "best", 0.6,
                        1, 1, api_name="/generate")
        scrub = c.predict(k + 1, "best", 0.6, api_name="/scrub")[-1]
        return out[-1], scrub

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(visit, range(8)))
    for k, (done, scrub) in enumerate(results):
        assert f"step {k + 1} of {k + 1}" in done and "done" in done
        assert f"step {k + 1} of {k + 1}" in scrub  # its own run, not another visitor's


@pytest.fixture(scope="module")
def paced_client():
    """The app on a model whose steps take at least 0.15 s each: a 50-step run lasts long
    enough for a request sent while it streams to land while it streams, on a busy machine.
    One launch for the module's tests (each starts its own runs)."""
    import time

    from gradio_client import Client

    from probe_core.serve.facade import ProbeDemo
    from tests.helpers import build_tiny_pipe, launched_app, tiny_test_demo

    class PacedDemo(ProbeDemo):
        def stream(self, *args, **kwargs):
            for run in super().stream(*args, **kwargs):
                yield run
                time.sleep(0.15)

    with launched_app(tiny_test_demo(build_tiny_pipe(), PacedDemo)) as url:
        yield Client(url, verbose=False)


def _iterating(job):
    import time

    while job.status().code.name not in ("ITERATING", "FINISHED") or not job.outputs():
        time.sleep(0.02)


def test_a_newer_job_replaces_the_running_one_and_stop_ends_it(paced_client):
    client = paced_client
    first = client.submit(PROMPT, 1, 50, 4.0, "best", 0.6, 1, 4, api_name="/generate")
    _iterating(first)
    # an edit needs the finished run: asked during the generation, it is refused
    with pytest.raises(Exception, match="still being generated"):
        client.predict(8, 0, 1.0, 0.0, 0.2, 1, 2, "guided", api_name="/intervene")
    second = client.predict(PROMPT, 2, 2, 4.0, "best", 0.6, 1, 4, api_name="/generate")
    assert "step 2 of 2" in second[-1] and "done" in second[-1]
    first.result()
    replaced = first.outputs()[-1][-1]  # it ended at a step, without a last word of its own
    assert "of 50" in replaced and "done" not in replaced and "Stopped" not in replaced
    # Stop: the job ends at its next step and writes the last update itself
    third = client.submit(PROMPT, 3, 50, 4.0, "best", 0.6, 1, 4, api_name="/generate")
    _iterating(third)
    client.predict(api_name="/stop")
    out = third.result()
    match = re.search(r"Stopped at step (\d+) of 50", out[-1])
    assert match, out[-1]
    k = int(match.group(1))
    assert out[3]["maximum"] == max(k, 2) and out[3]["value"] == k  # the step slider agrees
    assert f"step {k} of 50" in client.predict(k, "best", 0.6, api_name="/scrub")[-1]
    assert "must be between 1 and" in client.predict(k + 1, "best", 0.6, api_name="/scrub")[-1]
    assert "done" in client.predict(PROMPT, 2, 2, 4.0, "best", 0.6, 1, 4,
                                    api_name="/generate")[-1]  # free again


def test_one_visitors_stop_or_new_run_leaves_another_visitors_run_alone(paced_client):
    from gradio_client import Client

    client = paced_client
    other = Client(client.src, verbose=False)
    long_run = client.submit(PROMPT, 1, 15, 4.0, "best", 0.6, 1, 4, api_name="/generate")
    _iterating(long_run)
    assert "done" in other.predict(PROMPT, 2, 2, 4.0, "best", 0.6, 1, 4,
                                   api_name="/generate")[-1]
    other.predict(api_name="/stop")
    assert not long_run.done()  # the other visitor's run and stop came while this one ran
    assert "step 15 of 15" in long_run.result()[-1] and "done" in long_run.result()[-1]


def test_a_bad_canvas_or_upload_is_refused_and_the_session_goes_on(client):
    client.predict(PROMPT, 3, 2, 4.0, "best", 0.6, 1, 2, api_name="/generate")
    for bad in ("abc", {"layers": "x"}, [1, 2], {"background": None, "layers": [], "composite": None}):
        try:
            out = client.predict(0, 0, 1.0, 0.0, 0.2, 1, 1, "guided", "paint", bad, 0, 0,
                                 api_name="/intervene")
        except Exception as err:  # refused by gradio before the handler
            assert "Traceback" not in str(err) and "/tmp" not in str(err)  # no server paths
        else:
            assert "paint the target mask" in out[-1]
    for bad in ("abc", {"path": "/etc/passwd"}, [1]):  # an upload that is not one
        with pytest.raises(Exception) as err:
            client.predict(bad, None, "", "best", api_name="/probe_image")
        assert "root:" not in str(err.value)  # the file is not read back
    assert "Dice with target" in client.predict(8, 0, 1.0, 0.0, 0.2, 1, 2, "guided",
                                                api_name="/intervene")[-2]
