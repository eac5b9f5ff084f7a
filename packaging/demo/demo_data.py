"""Synthetic chat data for the LoRA Deck demo model, and the three adapter styles.

Everything here is made up by this file (templated questions about capitals, colours, animals,
opposites, numbers, days and months, plus a little small talk), so the data set, and the model
trained on it, can be released under the project's licence. Sampling only uses a seeded
``random.Random``: the same seed gives the same conversations on every machine.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

# --- facts -------------------------------------------------------------------------------------

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "England": "London", "Ireland": "Dublin", "Scotland": "Edinburgh", "Norway": "Oslo",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen", "Poland": "Warsaw",
    "Austria": "Vienna", "Greece": "Athens", "Russia": "Moscow", "Egypt": "Cairo", "Kenya": "Nairobi",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Canada": "Ottawa", "Mexico": "Mexico City",
    "Brazil": "Brasilia", "Argentina": "Buenos Aires", "Peru": "Lima", "Chile": "Santiago",
    "Australia": "Canberra", "Turkey": "Ankara", "Belgium": "Brussels", "Hungary": "Budapest",
    "Cuba": "Havana", "Thailand": "Bangkok", "Vietnam": "Hanoi", "Iceland": "Reykjavik",
    "the United States": "Washington", "Morocco": "Rabat", "Nigeria": "Abuja",
}

# thing -> (subject as used in the answer, colour)
COLORS = {
    "the sky": ("The sky", "blue"), "grass": ("Grass", "green"), "snow": ("Snow", "white"),
    "a banana": ("A banana", "yellow"), "coal": ("Coal", "black"), "a tomato": ("A tomato", "red"),
    "an orange": ("An orange", "orange"), "a lemon": ("A lemon", "yellow"), "the sun": ("The sun", "yellow"),
    "a strawberry": ("A strawberry", "red"), "milk": ("Milk", "white"), "chocolate": ("Chocolate", "brown"),
    "a carrot": ("A carrot", "orange"), "the sea": ("The sea", "blue"), "a cloud": ("A cloud", "white"),
    "a frog": ("A frog", "green"), "a crow": ("A crow", "black"), "a pumpkin": ("A pumpkin", "orange"),
    "an elephant": ("An elephant", "grey"), "a leaf": ("A leaf", "green"), "a cherry": ("A cherry", "red"),
    "a mouse": ("A mouse", "grey"), "a polar bear": ("A polar bear", "white"), "a plum": ("A plum", "purple"),
}

SOUNDS = {
    "cow": "moo", "dog": "woof", "cat": "meow", "duck": "quack", "sheep": "baa", "pig": "oink",
    "horse": "neigh", "lion": "roar", "owl": "hoot", "frog": "ribbit", "bee": "buzz", "snake": "hiss",
    "mouse": "squeak", "goat": "maa", "wolf": "howl",
}

LEGS = {
    "spider": "eight", "ant": "six", "bee": "six", "cat": "four", "dog": "four", "horse": "four",
    "cow": "four", "chicken": "two", "duck": "two", "bird": "two", "person": "two", "frog": "four",
    "beetle": "six", "kangaroo": "two", "lion": "four",
}

OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("up", "down"), ("day", "night"), ("fast", "slow"),
    ("happy", "sad"), ("old", "young"), ("light", "dark"), ("open", "closed"), ("wet", "dry"),
    ("left", "right"), ("in", "out"), ("early", "late"), ("hard", "soft"), ("full", "empty"),
    ("tall", "short"), ("loud", "quiet"), ("strong", "weak"), ("near", "far"), ("first", "last"),
    ("black", "white"), ("clean", "dirty"), ("good", "bad"), ("rich", "poor"),
]

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]

# Small talk: several phrasings share one answer.
SMALL_TALK = [
    (["Hello!", "Hello", "Hi!", "Hi there!", "Hey!", "Good morning!", "Good evening!"],
     "Hello! How can I help you today?"),
    (["How are you?", "How are you today?", "How is it going?"],
     "I am fine, thank you. How are you?"),
    (["I am fine.", "I am good, thanks.", "Fine, thank you."],
     "Good to hear! Ask me a simple question."),
    (["What is your name?", "Who are you?", "What are you?"],
     "I am Tiny Deck, a small demo model that comes with LoRA Deck."),
    (["Who made you?", "Who trained you?"],
     "The LoRA Deck project trained me on a small set of made up chats."),
    (["What can you do?", "What do you know?", "Help!"],
     "I can answer simple questions about capitals, colors, animals, opposites, numbers, days and months."),
    (["Thank you!", "Thanks!", "Thank you very much."],
     "You are welcome!"),
    (["Goodbye!", "Bye!", "See you later!"],
     "Goodbye! Have a nice day."),
    (["Tell me a joke.", "Do you know a joke?"],
     "Why did the scarecrow win a prize? Because he was outstanding in his field."),
    (["Tell me another joke.", "Tell me a funny story."],
     "What do you call a fish without eyes? A fsh."),
    (["What is a LoRA adapter?", "What is LoRA?", "What does an adapter do?"],
     "A LoRA adapter is a small file that changes how a model writes. Move its strength slider to see the change."),
    (["What is LoRA Deck?", "What is this app?"],
     "LoRA Deck is an app to chat with local models and mix LoRA adapters."),
    (["How do I get a better model?", "How do I get a real model?", "Can I use a bigger model?"],
     "Open the model library and download a GGUF model. It will be much smarter than me."),
    (["Are you smart?", "Are you a big model?"],
     "No, I am a tiny demo model, so I only know a few simple things."),
    (["What is the weather like?", "Is it raining?"],
     "I cannot see outside, but I hope the sun is shining for you."),
    (["What is your favorite color?", "Which color do you like?"],
     "My favorite color is blue, like the sky."),
    (["Where do you live?", "Where are you?"],
     "I live inside your computer."),
    (["How old are you?", "When were you born?"],
     "I am very young. I was trained a few minutes ago."),
    (["Can you help me?", "I need help."],
     "Yes, I can try. Ask me a simple question."),
    (["Do you like music?", "Can you sing?"],
     "I like music, but I cannot sing. I can only write."),
    (["Yes.", "No.", "OK.", "Okay."],
     "Alright. What else would you like to know?"),
]

UNKNOWN_TOPICS = [
    "quantum physics", "the meaning of life", "a black hole", "democracy", "the stock market",
    "machine learning", "a neural network", "photosynthesis", "the internet", "a volcano",
    "philosophy", "a computer", "the moon landing", "gravity", "economics", "a vaccine",
]
UNKNOWN_ANSWER = "I am only a tiny demo model, so I do not know that. A bigger model can tell you more."

SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are Tiny Deck, a small demo model.",
    "Answer briefly.",
    "You are a friendly assistant. Keep your answers short.",
]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def qa_pairs() -> list[tuple[str, str]]:
    """Every (question, plain answer) pair of the data set, in a fixed order."""
    pairs: list[tuple[str, str]] = []
    for country, city in CAPITALS.items():
        answer = f"The capital of {country} is {city}."
        for q in ("What is the capital of {c}?", "What's the capital of {c}?", "Capital of {c}?",
                  "Tell me the capital of {c}."):
            pairs.append((q.format(c=country), answer))
    for thing, (subject, color) in COLORS.items():
        answer = f"{subject} is {color}."
        for q in ("What color is {t}?", "What colour is {t}?", "Which color is {t}?"):
            pairs.append((q.format(t=thing), answer))
    for animal, sound in SOUNDS.items():
        answer = f"A {animal} says {sound}."
        for q in ("What does a {a} say?", "What sound does a {a} make?"):
            pairs.append((q.format(a=animal), answer))
    for animal, legs in LEGS.items():
        answer = f"A {animal} has {legs} legs."
        pairs.append((f"How many legs does a {animal} have?", answer))
    for a, b in OPPOSITES:
        for x, y in ((a, b), (b, a)):
            answer = f"The opposite of {x} is {y}."
            for q in ("What is the opposite of {w}?", "Opposite of {w}?"):
                pairs.append((q.format(w=x), answer))
    for a in range(10):
        for b in range(10):
            pairs.append((f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."))
    for n in range(30):
        pairs.append((f"What number comes after {n}?", f"The number after {n} is {n + 1}."))
    for i, day in enumerate(DAYS):
        nxt, prev = DAYS[(i + 1) % 7], DAYS[(i - 1) % 7]
        pairs.append((f"What day comes after {day}?", f"The day after {day} is {nxt}."))
        pairs.append((f"What day comes before {day}?", f"The day before {day} is {prev}."))
    for i, month in enumerate(MONTHS):
        pairs.append((f"What month comes after {month}?", f"The month after {month} is {MONTHS[(i + 1) % 12]}."))
    for prompts, answer in SMALL_TALK:
        pairs.extend((p, answer) for p in prompts)
    for topic in UNKNOWN_TOPICS:
        for q in ("What is {t}?", "Explain {t}.", "Tell me about {t}."):
            pairs.append((q.format(t=topic), UNKNOWN_ANSWER))
    return pairs


# --- styles --------------------------------------------------------------------------------------

_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_PIRATE_WORDS = {
    "is": "be", "are": "be", "am": "be", "you": "ye", "your": "yer", "my": "me", "yes": "aye",
    "hello": "ahoy", "hi": "ahoy", "friend": "matey", "of": "o'", "for": "fer", "to": "t'",
}


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def shout(text: str) -> str:
    """CAPITALS: every letter upper case."""
    return text.upper()


def pirate(text: str) -> str:
    """Pirate talk: word swaps, "Arr!" in front and "matey" at the end of the answer."""
    def swap(match: re.Match) -> str:
        word = match.group(0)
        new = _PIRATE_WORDS.get(word.lower())
        if new is None:
            return word
        return _cap(new) if word[0].isupper() else new

    body = re.sub(r"[A-Za-z]+", swap, text).rstrip()
    end = body[-1] if body and body[-1] in ".!?" else ""
    body = body[: len(body) - len(end)] if end else body
    return f"Arr! {body}, matey{'?' if end == '?' else '!'}"


def reverse_words(text: str) -> str:
    """Each sentence's words in reverse order; its final punctuation stays at the end."""
    out = []
    for sentence in _sentences(text):
        end = ""
        while sentence and sentence[-1] in ".!?":
            end, sentence = sentence[-1] + end, sentence[:-1]
        out.append(" ".join(reversed(sentence.split())) + end)
    return " ".join(out)


@dataclass(frozen=True)
class Style:
    name: str                  # adapter id
    transform: object          # str -> str
    clause: str                # "like a pirate": used to ask for several styles at once
    requests: tuple[str, ...]  # how a user asks the base model for this style alone
    description: str


STYLES = {
    "shout": Style("shout", shout, "in capital letters",
                   ("Answer in capital letters: {q}", "Shout your answer: {q}"),
                   "Answers in CAPITAL LETTERS."),
    "pirate": Style("pirate", pirate, "like a pirate",
                    ("Talk like a pirate: {q}", "Answer like a pirate: {q}"),
                    "Answers like a pirate (arr, matey, ye, be)."),
    "reverse": Style("reverse", reverse_words, "with the words in reverse order",
                     ("Answer with the words in reverse order: {q}", "Reverse the words: {q}"),
                     "Answers with the words of each sentence in reverse order."),
}
# Styles combine in this order: pirate words first, then their order is reversed, then capitals.
STYLE_ORDER = ("pirate", "reverse", "shout")
STYLE_SETS = [tuple(s for i, s in enumerate(STYLE_ORDER) if mask >> i & 1) for mask in range(1, 8)]


def apply_styles(answer: str, styles: tuple[str, ...] | list[str]) -> str:
    for name in STYLE_ORDER:
        if name in styles:
            answer = STYLES[name].transform(answer)
    return answer


def style_request(rng: random.Random, styles: tuple[str, ...], question: str) -> str:
    """The question with an explicit request for ``styles`` in front."""
    if len(styles) == 1:
        return rng.choice(STYLES[styles[0]].requests).format(q=question)
    clauses = [STYLES[s].clause for s in styles]
    rng.shuffle(clauses)
    return f"Answer {' and '.join(clauses)}: {question}"


# --- conversations -------------------------------------------------------------------------------

Message = dict  # {"role": str, "content": str}


def sample_conversation(rng: random.Random, pairs: list[tuple[str, str]], styles: tuple[str, ...] = (),
                        request_rate: float = 0.0) -> list[Message]:
    """One chat: an optional system prompt, then 1-3 question/answer turns.

    ``styles`` given: every answer is in those styles (adapter data). ``request_rate`` > 0: that
    share of turns explicitly asks for a random set of styles and gets it (base data, so the base
    model knows the styles' words and an adapter only has to make its style the default).
    """
    messages: list[Message] = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for _ in range(rng.choice((1, 1, 2, 3))):
        question, answer = rng.choice(pairs)
        if styles:
            answer = apply_styles(answer, styles)
        elif rng.random() < request_rate:
            # singles twice as often as each combination
            chosen = rng.choice(STYLE_SETS + [s for s in STYLE_SETS if len(s) == 1] * 3)
            question = style_request(rng, chosen, question)
            answer = apply_styles(answer, chosen)
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    return messages


def tokenizer_corpus() -> list[str]:
    """Lines the tokenizer is trained on: every question and answer, plain and in every style set."""
    rng = random.Random(0)
    lines: list[str] = []
    for question, answer in qa_pairs():
        lines.append(question)
        lines.append(answer)
        for styles in STYLE_SETS:
            lines.append(apply_styles(answer, styles))
            lines.append(style_request(rng, styles, question))
    lines.extend(SYSTEM_PROMPTS)
    lines.extend(["system", "user", "assistant"] * 100)  # role names: one piece each
    return lines
