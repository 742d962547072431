"""My analyses: a signed-in user's own analyses, newest first, with verdict, thumbnail and delete; nobody else's;
the result page's way back (copy link, analyse another) and the report named after the file."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from ml_app.models import Analysis

from .test_site import upload


@pytest.fixture(autouse=True)
def fresh_rates():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db(transaction=True)  # the job's heartbeat thread writes to the database too
def test_a_signed_in_user_sees_their_own_analyses_newest_first_and_can_delete_one(
    client, active_checkpoint, one_face_video, two_face_video
):
    from ml_app.tasks import analyze_video_task

    assert client.get("/analyses/mine/").status_code == 302, "signing in first"
    someone = User.objects.create_user("someone", password="x")
    client.force_login(someone)
    theirs = upload(client, one_face_video, "theirs.mp4").json()["id"]
    alice = User.objects.create_user("alice", password="x")
    client.force_login(alice)
    first = upload(client, one_face_video, "first.mp4").json()["id"]
    analyze_video_task.run(first, 1)
    second = upload(client, two_face_video, "second.mp4").json()["id"]  # another file: queued, not reused

    page = client.get("/analyses/mine/").content.decode()
    assert page.index("second.mp4") < page.index("first.mp4"), "newest first"
    assert "theirs.mp4" not in page and theirs not in page, "only one's own"
    done = Analysis.objects.get(pk=first)
    assert f'<span class="badge {done.verdict.lower()}">{done.verdict}</span>' in page
    assert f"/analyses/{first}/crops/person0.jpg" in page, "the face thumbnail"
    assert "Queued" in page.split('class="history-name">second.mp4')[1].split("</li>")[0], "says where it is"
    assert "My analyses" in client.get("/").content.decode(), "linked from every page when signed in"

    response = client.post(f"/analyses/{second}/delete", {"next": "mine"})
    assert response.status_code == 302 and response["Location"] == "/analyses/mine/"
    assert not Analysis.objects.filter(pk=second).exists()

    result = client.get(f"/analyses/{first}/").content.decode()
    assert 'id="copy-link"' in result and f'data-url="http://testserver/analyses/{first}/"' in result
    assert 'id="analyse-another" href="/"' in result


@pytest.mark.django_db
def test_a_private_analysis_opens_only_for_its_owner(client, active_checkpoint, one_face_video, settings):
    settings.PRIVATE_RESULTS = True
    alice = User.objects.create_user("alice", password="x")
    client.force_login(alice)
    mine = upload(client, one_face_video, "mine.mp4").json()["id"]
    assert Analysis.objects.get(pk=mine).private, "PRIVATE_RESULTS makes a signed-in user's analyses private"
    page = client.get(f"/analyses/{mine}/").content.decode()
    assert "Private: only you can open this analysis" in page and 'id="privacy-button"' in page
    paths = [
        f"/analyses/{mine}/",
        f"/analyses/{mine}/status",
        f"/analyses/{mine}/video",
        f"/analyses/{mine}/report.pdf",
    ]

    client.logout()
    assert [client.get(path).status_code for path in paths] == [404, 404, 404, 404], "nobody else, not even a hint"
    assert client.post(f"/analyses/{mine}/delete").status_code == 404 and Analysis.objects.filter(pk=mine).exists()
    anonymous = upload(client, one_face_video, "anonymous.mp4").json()["id"]
    assert not Analysis.objects.get(pk=anonymous).private, "without an owner nobody could open it"
    assert client.post(f"/analyses/{anonymous}/privacy", {"private": "on"}).status_code == 302
    assert not Analysis.objects.get(pk=anonymous).private, "only the owner changes it"

    client.force_login(alice)
    client.post(f"/analyses/{mine}/privacy", {"private": "off"})
    client.logout()
    assert client.get(f"/analyses/{mine}/").status_code == 200, "reachable by its address again"


@pytest.mark.django_db(transaction=True)
def test_look_closer_analyses_the_video_again_with_twice_the_windows(
    client, active_checkpoint, one_face_video, settings
):
    from ml_app.tasks import analyze_video_task

    settings.DETECTION_MAX_WINDOWS = 2
    first = upload(client, one_face_video, "clip.mp4").json()["id"]
    analyze_video_task.run(first, 1)
    assert len(Analysis.objects.get(pk=first).result["windows"]) == 2
    page = client.get(f"/analyses/{first}/").content.decode()
    assert 'id="look-closer"' in page and "Look closer:\n      4 windows" in page

    response = client.post(f"/analyses/{first}/closer")
    closer = Analysis.objects.exclude(pk=first).get()
    assert response["Location"] == f"/analyses/{closer.pk}/" and closer.max_windows == 4
    assert closer.status == Analysis.Status.QUEUED, "analysed again, not the earlier result reused"
    analyze_video_task.run(str(closer.pk), 1)
    closer.refresh_from_db()
    assert len(closer.result["windows"]) == 4
    summary = client.get(f"/analyses/{closer.pk}/status").json()["result"]["summary"]
    assert summary["coverage"].startswith("Looked at 4 windows")
    assert Analysis.objects.get(pk=first).max_windows is None, "the first analysis stays as it was"
    assert 'id="look-closer"' not in client.get(f"/analyses/{closer.pk}/").content.decode(), "all 4 windows seen"
