"""Example exchanges that show a small base model what a long, useful answer looks like.

Gemma 3 270M is a base model: given only a one-line preamble it ended its turn after a
dozen tokens (the seed's pirate story was answered " Hola"). Two worked exchanges of
several paragraphs, one a story and one a recipe, in the conversation's language, make it
answer at length in that language. They are written for this purpose; llama.cpp keeps them
in its key/value cache between requests, so after the first answer they cost nothing.
"""

from __future__ import annotations

SPANISH = (
    (
        "Cuéntame un cuento sobre un dragón que tenía miedo del fuego.",
        "Había una vez, en lo alto de una montaña cubierta de nieve, un pequeño dragón "
        "llamado Lino. A diferencia de sus hermanos, Lino tenía miedo del fuego: cada vez "
        "que intentaba soplar, cerraba los ojos y solo le salía una nube de humo gris.\n\n"
        "Los otros dragones se reían de él, y Lino pasaba las tardes solo, mirando el valle. "
        "Un invierno, una tormenta dejó a los pastores del pueblo atrapados en una cueva "
        "helada. Nadie podía llegar hasta ellos, y el frío era cada vez más fuerte.\n\n"
        "Lino respiró hondo, pensó en los niños del pueblo y, por primera vez, abrió los "
        "ojos mientras soplaba. De su boca salió una llama pequeña y cálida, justo la que "
        "hacía falta para derretir el hielo sin hacer daño a nadie. Desde aquel día, Lino "
        "supo que el valor no consiste en no tener miedo, sino en hacer lo correcto a pesar "
        "de él.",
    ),
    (
        "Explica cómo se prepara un café de olla.",
        "Para preparar un café de olla necesitas agua, café molido grueso, piloncillo y una "
        "rama de canela. Primero, pon a calentar un litro de agua en una olla de barro a "
        "fuego medio.\n\n"
        "Cuando el agua empiece a hervir, añade el piloncillo y la canela, y remueve hasta "
        "que el piloncillo se disuelva por completo. Después, agrega cuatro cucharadas de "
        "café, apaga el fuego y tapa la olla durante cinco minutos para que se asiente.\n\n"
        "Por último, cuela el café con un colador fino y sírvelo caliente en tazas de barro. "
        "Si te gusta más dulce, puedes añadir un poco más de piloncillo al gusto.",
    ),
)

ENGLISH = (
    (
        "Tell me a story about a lighthouse keeper who was afraid of the dark.",
        "Once upon a time, on a rocky island far from the coast, there lived a lighthouse "
        "keeper named Ada. Every evening she climbed the hundred steps to light the great "
        "lamp, and every evening her hands shook, because Ada was afraid of the dark.\n\n"
        "One stormy night the lamp went out. The wind howled, the waves crashed against the "
        "rocks, and far away Ada could see the small lights of a fishing boat heading "
        "straight for the reef. There was no one else on the island to help.\n\n"
        "Ada took a deep breath, climbed the stairs in the dark, one step at a time, and "
        "lit the lamp by hand. The beam swept across the sea, and the boat turned just in "
        "time. From that night on, Ada still felt afraid of the dark, but she knew she was "
        "braver than her fear.",
    ),
    (
        "Explain how to make a cup of tea.",
        "To make a good cup of tea you need fresh water, a tea bag or loose leaves, and a "
        "cup or teapot. First, bring the water to the boil in a kettle.\n\n"
        "While the water heats, warm the cup or teapot with a little hot water and pour it "
        "away. Put the tea in, pour the boiling water over it, and let it steep for three "
        "to five minutes, depending on how strong you like it.\n\n"
        "Finally, remove the tea bag or strain the leaves, and add milk, sugar or lemon if "
        "you like. Drink it while it is hot, and enjoy a quiet moment.",
    ),
)
