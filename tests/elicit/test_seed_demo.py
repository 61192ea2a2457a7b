import pytest
from django.core.management import call_command

from elicit.models import Context, Deliberation, Question

pytestmark = pytest.mark.django_db


def snapshot():
    return (
        list(Deliberation.objects.values_list("id", "slug", "status")),
        list(Question.objects.values_list("id", "slug", "text")),
        list(Context.objects.values_list("id", "text")),
        sorted(Question.contexts.through.objects.values_list("question_id", "context_id")),
    )


def test_seed_demo_twice_gives_the_same_data():
    call_command("seed_demo")
    first = snapshot()
    call_command("seed_demo")
    assert snapshot() == first


def test_the_demo_has_the_three_questions_of_the_trial_and_a_shared_context():
    call_command("seed_demo")
    deliberation = Deliberation.objects.get(slug="demo")
    assert deliberation.status == Deliberation.Status.OPEN
    assert deliberation.questions.count() == 3
    shared = Context.objects.get(text="When a decision has lasting consequences")
    assert set(shared.questions.values_list("slug", flat=True)) == {"abortion", "parenting"}
    # 4 + 3 + 3 contexts, one of them shared by two questions
    assert Context.objects.filter(deliberation=deliberation).count() == 9
