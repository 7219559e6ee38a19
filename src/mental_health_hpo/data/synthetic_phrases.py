"""The phrase tables of the synthetic ReDSM5 generator (``data.synthetic``): data, not logic.

Kept apart so the generator reads as the procedure it is; what each table is for, and what a
model must learn from the posts they make, is in ``data.synthetic``'s docstring.
"""

from __future__ import annotations

# Each symptom: (openers, cores, tails). A sentence is opener + core + tail, so each symptom has
# hundreds of surface forms. Cores are first-person, as on Reddit.
SYMPTOM_PARTS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "DEPRESSED_MOOD": (
        ["", "Honestly ", "Lately ", "Most days ", "For weeks now "],
        [
            "I feel empty and sad",
            "I just feel hopeless",
            "everything feels dark and heavy",
            "I cry for no reason",
            "I feel so down I can't shake it",
            "my mood is at rock bottom",
            "there's this constant sadness in me",
            "I feel numb and miserable",
        ],
        ["", " all the time", " and it doesn't lift", " nearly every day", " no matter what"],
    ),
    "ANHEDONIA": (
        ["", "Honestly ", "These days ", "Weirdly ", "For months "],
        [
            "nothing I used to love interests me anymore",
            "I stopped enjoying games and music",
            "I don't care about my hobbies now",
            "even seeing friends gives me no pleasure",
            "I can't enjoy anything",
            "things that were fun feel pointless",
            "I lost interest in basically everything",
        ],
        ["", " at all", " anymore", " and I don't know why", " which scares me"],
    ),
    "APPETITE_CHANGE": (
        ["", "Lately ", "Recently ", "This month ", "Honestly "],
        [
            "I barely eat anything",
            "I've lost a lot of weight without trying",
            "I keep binge eating at night",
            "food has no appeal to me",
            "I gained weight from stress eating",
            "I skip meals because I'm never hungry",
            "my appetite is completely gone",
        ],
        ["", " these weeks", " and my clothes don't fit", " most days", " again"],
    ),
    "SLEEP_ISSUES": (
        ["", "Every night ", "Lately ", "For weeks ", "Again "],
        [
            "I can't fall asleep until dawn",
            "I wake up at 4am and can't get back to sleep",
            "I sleep twelve hours and still want more",
            "my insomnia is back",
            "I lie awake all night",
            "I keep oversleeping through my alarms",
            "my sleep schedule is completely wrecked",
        ],
        ["", " every night", " no matter what I try", " and I'm exhausted", " these days"],
    ),
    "PSYCHOMOTOR": (
        ["", "People say ", "Lately ", "At work ", "Honestly "],
        [
            "I move and talk so slowly",
            "I can't sit still and keep pacing",
            "my body feels like it's moving through mud",
            "I'm restless and fidgety all day",
            "I speak so slowly people finish my sentences",
            "I keep wringing my hands and pacing around",
            "every movement feels slowed down",
        ],
        ["", " all the time", " and others notice", " these days", " for no reason"],
    ),
    "FATIGUE": (
        ["", "Every day ", "Lately ", "Honestly ", "Even after resting "],
        [
            "I'm exhausted all the time",
            "I have no energy to do anything",
            "even showering wears me out",
            "I feel drained and tired constantly",
            "getting out of bed takes all my energy",
            "I'm worn out by the smallest tasks",
            "my body feels heavy and tired",
        ],
        ["", " every day", " no matter how much I rest", " and it's getting worse", " lately"],
    ),
    "WORTHLESSNESS": (
        ["", "Honestly ", "Deep down ", "Lately ", "Every day "],
        [
            "I feel completely worthless",
            "I blame myself for everything that goes wrong",
            "I'm a failure and a burden to everyone",
            "I hate myself so much",
            "I feel guilty for existing",
            "everyone would be better off without my mistakes",
            "I feel like I'm useless",
        ],
        ["", " all the time", " and I can't stop thinking it", " no matter what", " again"],
    ),
    "COGNITIVE_ISSUES": (
        ["", "At school ", "Lately ", "At work ", "Honestly "],
        [
            "I can't concentrate on anything",
            "I read the same page over and over",
            "I can't make even simple decisions",
            "my mind is foggy and slow",
            "I keep forgetting what I was doing",
            "I can't focus long enough to finish a task",
            "thinking clearly feels impossible",
        ],
        ["", " anymore", " these days", " and my grades are slipping", " at all"],
    ),
    "SUICIDAL_THOUGHTS": (
        ["", "Sometimes ", "Lately ", "At night ", "Honestly "],
        [
            "I think about ending my life",
            "I wish I could just not wake up",
            "I've been thinking about killing myself",
            "I keep imagining my own death",
            "I don't want to be alive anymore",
            "I looked up ways to die",
            "I wrote a goodbye note",
        ],
        ["", " more often", " and it scares me", " every night", " again"],
    ),
}

# Explicit negatives reuse the symptom's vocabulary, so words alone do not decide the label.
NEGATIVES: dict[str, list[str]] = {
    "DEPRESSED_MOOD": ["I don't feel sad, just stressed", "my mood is actually okay these days"],
    "ANHEDONIA": ["I still enjoy my games and music", "I still love seeing my friends"],
    "APPETITE_CHANGE": ["my appetite is normal", "I eat fine, food isn't the problem"],
    "SLEEP_ISSUES": ["I sleep fine at night", "sleep isn't an issue for me"],
    "PSYCHOMOTOR": ["I move around normally", "nobody says I seem slowed down or restless"],
    "FATIGUE": ["I have plenty of energy", "I'm not tired, I'm just bored"],
    "WORTHLESSNESS": ["I don't blame myself for this", "I know I'm not worthless"],
    "COGNITIVE_ISSUES": ["I can focus on work fine", "my concentration is okay"],
    "SUICIDAL_THOUGHTS": ["I'm not suicidal", "I have no thoughts of ending my life"],
}

# Other people whose words the poster quotes: the quoted sentence is not the poster's evidence.
OTHERS = [
    "my roommate",
    "my sister",
    "my brother",
    "my mom",
    "my dad",
    "my best friend",
    "a coworker",
    "my girlfriend",
    "my boyfriend",
    "my cousin",
    "a guy in my class",
    "my neighbour",
    "my aunt",
    "a friend from work",
    "my grandma",
    "someone on a forum",
]
# Reported speech with the speaker and the listener swapped: "After my sister asked, I said:"
# (the poster speaks: evidence) against "After I asked, my sister said:" (someone else speaks:
# not evidence). Both hold the same words, since "I" is a one-letter token; only who does what
# differs, which a bag of words cannot see.
SPEECH_FRAMES = [
    "after {a} asked, {b} said",
    "when {a} called, {b} admitted",
    "once {a} texted, {b} replied",
    "before {a} left, {b} confessed",
    "since {a} kept asking, {b} finally said",
    "when {a} checked in, {b} wrote",
]
# Topic mentions: the symptom's subject, in nobody's experience.
TOPICS: dict[str, list[str]] = {
    "DEPRESSED_MOOD": ["sadness and hopelessness", "why people feel empty"],
    "ANHEDONIA": ["losing interest in hobbies", "why people stop enjoying music"],
    "APPETITE_CHANGE": ["appetite and weight loss", "binge eating"],
    "SLEEP_ISSUES": ["insomnia", "how much sleep people need"],
    "PSYCHOMOTOR": ["restlessness and pacing", "slowed speech in patients"],
    "FATIGUE": ["chronic tiredness", "why people have no energy"],
    "WORTHLESSNESS": ["guilt and self-blame", "feeling worthless"],
    "COGNITIVE_ISSUES": ["trouble concentrating", "brain fog"],
    "SUICIDAL_THOUGHTS": ["suicide prevention", "people who think about death"],
}
TOPIC_FRAMES = [
    "I read an article about {topic}",
    "we had a lecture on {topic} today",
    "I watched a documentary about {topic}",
    "my teacher talked about {topic} in class",
]

SPECIAL_CASES = [
    "I was diagnosed with bipolar disorder a few years ago",
    "my therapist thinks it might be PTSD",
    "I had a panic attack in the grocery store",
    "I started new medication last month",
    "my psychiatrist changed my dose again",
]

# Filler shares words with symptoms ("tired", "night", "eat", "focus") on purpose.
FILLER = [
    "I work at a warehouse and my shift starts at 6",
    "my roommate got a new cat last week",
    "we watched a movie on friday night",
    "I'm tired of my landlord ignoring the heating",
    "my sister is getting married in the spring",
    "I need to focus on my driving test next month",
    "we went out to eat for my dad's birthday",
    "the weather has been awful here",
    "I've been learning to cook pasta",
    "my phone screen cracked again",
    "I moved to a new city in january",
    "my boss wants the report by monday",
    "I have a dentist appointment tomorrow",
    "my friends and I used to play football",
    "the bus was late again this morning",
    "I started a new job at a call center",
    "my mom keeps calling about the holidays",
    "I've been trying to save money for a car",
    "my laptop is really slow these days",
    "our team lost the game last night",
]
OPENERS = ["Hi everyone.", "Throwaway account.", "Not sure where else to post this.", "Long post."]
CLOSERS = ["Thanks for reading.", "Any advice?", "I don't know what to do.", "Sorry for the rant."]

EXPLANATIONS = {
    1: "The sentence describes {name} directly, consistent with the DSM-5 criterion.",
    0: "The sentence mentions {name} but does not report it for the poster.",
}
