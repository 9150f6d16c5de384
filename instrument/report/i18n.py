"""Languages of the reports people read: the policy brief and the school score cards.

Templates are written in English with Jinja's ``{% trans %}`` blocks and ``_()`` calls; the
English text is the message id and `CATALOGS` maps it to each other language. A message with no
entry in a language's catalog is an error when that language is rendered (`Translator.missing`
collects them, and the report tests render every template in every language), so no report
silently mixes languages. Construct labels and item text come from the bank (``label_es``,
``text_es``), not from here.
"""
from __future__ import annotations

import re
from typing import Mapping

LANGUAGES = ("en", "es")

# Spanish (Latin American usage of U.S. school districts' family communications: "escuela",
# "maestros y personal", "familias"; numbers with a decimal point as printed in U.S. reports).
ES: dict[str, str] = {
    # --- shared ---------------------------------------------------------------------------
    "Simulated data: every number here comes from a computer simulation, not from real schools.":
        "Datos simulados: todas las cifras de este documento provienen de una simulación por "
        "computadora, no de escuelas reales.",
    "Policy brief: measuring school-family partnership practice":
        "Resumen de política: cómo medir la colaboración entre la escuela y las familias",
    "School score cards": "Tarjetas de resultados por escuela",
    "teacher": "maestros y personal", "family": "familias",
    "Teacher survey": "Encuesta de maestros y personal", "Family survey": "Encuesta de familias",
    "Very Weak": "Muy débil", "Weak": "Débil", "Neutral": "Neutral", "Strong": "Fuerte",
    "Very Strong": "Muy fuerte", "Overall": "General",
    "higher": "más alto", "lower": "más bajo",
    "chronic absenteeism": "ausentismo crónico", "attendance": "asistencia",
    "ELA proficiency": "competencia en lectura y escritura (ELA)",
    "math proficiency": "competencia en matemáticas",
    "change in chronic absenteeism": "cambio en el ausentismo crónico",
    "change in attendance": "cambio en la asistencia",
    "change in ELA proficiency": "cambio en la competencia en lectura y escritura (ELA)",
    "change in math proficiency": "cambio en la competencia en matemáticas",
    # --- brief ----------------------------------------------------------------------------
    "What the instrument measures": "Qué mide el instrumento",
    "How reliable school scores are": "Qué tan confiables son los resultados de cada escuela",
    "What the scores predict": "Qué predicen los resultados",
    "Districts and the state": "Los distritos y el estado",
    "How to use the scores": "Cómo usar los resultados",
    "For state and district policy teams. Numbers are read from the results of a validation "
    "run; nothing here identifies a person.":
        "Para los equipos de política estatales y de distrito. Las cifras se toman de los "
        "resultados de una corrida de validación; nada de lo que aparece aquí identifica a una "
        "persona.",
    "Practice": "Práctica", "What strong practice looks like": "Cómo se ve una práctica sólida",
    "Teacher items": "Preguntas para maestros", "Family items": "Preguntas para familias",
    "Answers to the items of each practice hang together well: internal consistency "
    "(Cronbach's alpha) ranges from %(lo)s to %(hi)s across practices and forms (1.00 would be "
    "perfect agreement among items).":
        "Las respuestas a las preguntas de cada práctica son coherentes entre sí: la "
        "consistencia interna (alfa de Cronbach) va de %(lo)s a %(hi)s según la práctica y el "
        "formulario (1.00 sería un acuerdo perfecto entre las preguntas).",
    "Internal consistency (Cronbach's alpha) ranges from %(lo)s to %(hi)s across practices and "
    "forms; below %(rule)s the items of a practice do not hang together well enough, so its "
    "score should be read with caution (1.00 would be perfect agreement among items).":
        "La consistencia interna (alfa de Cronbach) va de %(lo)s a %(hi)s según la práctica y el "
        "formulario; por debajo de %(rule)s las preguntas de una práctica no son lo bastante "
        "coherentes entre sí, por lo que su puntaje debe leerse con cautela (1.00 sería un "
        "acuerdo perfecto entre las preguntas).",
    "The survey (%(name)s) measures %(n)s constructs.":
        "La encuesta (%(name)s) mide %(n)s constructos.",
    "%(form)s: with %(k)s respondents per school, every practice's school score reaches a "
    "reliability of %(target)s.":
        "%(form)s: con %(k)s personas que respondan por escuela, el resultado de cada práctica "
        "alcanza una confiabilidad de %(target)s.",
    "A school's score is an average over its respondents, so it becomes more trustworthy as "
    "more people answer. A score is shown only when at least %(min_n)s people answered (so no "
    "one can be identified) and enough of the school answered for the result to represent it "
    "(%(rates)s). How precise a shown score is decides how it is shown: every score comes with "
    "an interval, and a score from few respondents is marked as less precise.":
        "El resultado de una escuela es un promedio de quienes respondieron, por lo que es más "
        "confiable cuantas más personas responden. Un resultado se muestra solo cuando "
        "respondieron al menos %(min_n)s personas (para que nadie pueda ser identificado) y "
        "respondió una parte suficiente de la escuela para que el resultado la represente "
        "(%(rates)s). La precisión de un resultado decide cómo se muestra: cada resultado va "
        "acompañado de un intervalo, y un resultado basado en pocas respuestas se marca como "
        "menos preciso.",
    "at least %(pct)s%% of %(who)s": "al menos el %(pct)s %% de %(who)s",
    "teachers": "los maestros", "families": "las familias",
    "Bands (Very Weak to Very Strong) are a summary, and sometimes a wrong one: for a shown "
    "score, the chance that the school's true score lies in the band shown averages %(acc)s "
    "(band accuracy), and the chance that a second survey would put the school in the same band "
    "averages %(cons)s (band consistency). Each card gives this chance for every score; read "
    "the interval, not only the band.":
        "Las categorías (de Muy débil a Muy fuerte) son un resumen, y a veces uno equivocado: "
        "para un resultado que se muestra, la probabilidad de que el verdadero resultado de la "
        "escuela esté en la categoría indicada es en promedio %(acc)s (exactitud de la "
        "categoría), y la probabilidad de que una segunda encuesta ubique a la escuela en la "
        "misma categoría es en promedio %(cons)s (consistencia de la categoría). Cada tarjeta "
        "da esta probabilidad para cada resultado; lea el intervalo, no solo la categoría.",
    "How school scores become more reliable with more respondents":
        "Cómo los resultados de una escuela se vuelven más confiables con más respuestas",
    "Comparing schools with %(controls)s held equal:":
        "Al comparar escuelas con los mismos valores de %(controls)s:",
    "prior results": "resultados previos",
    "\"Overall\" on the %(form)s is the item bank's overall score (%(label)s): the unweighted "
    "mean of %(n)s practice scores (%(names)s), each on its items as keyed in the item bank, so "
    "a higher score means more of every practice.":
        "El resultado \"General\" de la %(form)s es el resultado general del banco de preguntas "
        "(%(label)s): el promedio simple de %(n)s resultados por práctica (%(names)s), cada uno "
        "calculado con sus preguntas según la codificación del banco de preguntas, de modo que "
        "un resultado más alto indica más de cada práctica.",
    "Omega, a reliability estimate from the factor analysis that weighs each item by how well "
    "it measures its practice, ranges from %(lo)s to %(hi)s.":
        "Omega, una estimación de la confiabilidad a partir del análisis factorial que pondera "
        "cada pregunta según qué tan bien mide su práctica, va de %(lo)s a %(hi)s.",
    "Below %(rule)s, the usual minimum for research use (%(src)s): %(names)s. Scores of these "
    "practices should be read with caution.":
        "Por debajo de %(rule)s, el mínimo habitual para uso en investigación (%(src)s): "
        "%(names)s. Los resultados de estas prácticas deben leerse con cautela.",
    "Every practice reaches %(rule)s, the usual minimum for research use (%(src)s).":
        "Todas las prácticas alcanzan %(rule)s, el mínimo habitual para uso en investigación "
        "(%(src)s).",
    "Do the answers follow the structure the survey was built on, each item going with its own "
    "practice? A confirmatory factor analysis checks this against conventional limits "
    "(%(limits)s; %(src)s), which are rules of thumb rather than tests:":
        "¿Siguen las respuestas la estructura con la que se construyó la encuesta, con cada "
        "pregunta asociada a su propia práctica? Un análisis factorial confirmatorio lo "
        "comprueba frente a límites convencionales (%(limits)s; %(src)s), que son reglas "
        "prácticas y no pruebas estadísticas:",
    "%(form)s: the answers follow the intended structure (%(values)s).":
        "%(form)s: las respuestas siguen la estructura prevista (%(values)s).",
    "%(form)s: the answers do not follow the intended structure closely (%(fails)s), so its "
    "practice scores should be read with caution.":
        "%(form)s: las respuestas no siguen de cerca la estructura prevista (%(fails)s), por lo "
        "que los resultados de sus prácticas deben leerse con cautela.",
    "%(index)s %(v)s, limit %(op)s %(limit)s": "%(index)s %(v)s, límite %(op)s %(limit)s",
    "In simulated data the structure holds by construction: this shows that the analysis "
    "works, not that the survey's structure holds in real schools.":
        "En datos simulados la estructura se cumple por construcción: esto muestra que el "
        "análisis funciona, no que la estructura de la encuesta se cumpla en escuelas reales.",
    "other school characteristics": "otras características de la escuela", "and": "y",
    "Schools at the 90th percentile of the %(form)s %(score)s score, compared with schools at "
    "the 10th, had:":
        "Las escuelas en el percentil 90 del resultado en %(score)s (%(form)s), comparadas con "
        "las del percentil 10, tuvieron:",
    "%(form)s %(score)s score": "resultado en %(score)s (%(form)s)",
    "%(v)s percentage points %(dir)s %(name)s (95%% interval %(ci)s)":
        "%(name)s %(v)s puntos porcentuales %(dir)s (intervalo de 95 %%: %(ci)s)",
    "; for poverty, the same comparison gives %(v)s points %(dir)s":
        "; para la pobreza, la misma comparación da %(v)s puntos %(dir)s",
    "%(a)s to %(b)s": "%(a)s a %(b)s",
    "from %(a)s lower to %(b)s higher": "de %(a)s menos a %(b)s más",
    "In simulated data these numbers only show that the analysis recovers the effect the "
    "simulation planted; they say nothing about real schools.":
        "Con datos simulados, estas cifras solo muestran que el análisis recupera el efecto "
        "que se incluyó en la simulación; no dicen nada sobre escuelas reales.",
    "These are associations across schools, not proof that raising a score causes the "
    "difference.":
        "Son asociaciones entre escuelas, no prueba de que subir un resultado cause la "
        "diferencia.",
    "Difference between schools at the 10th and 90th percentile":
        "Diferencia entre escuelas en los percentiles 10 y 90",
    "Bars: predicted difference in the outcome, in percentage points; lines: 95% confidence "
    "intervals.":
        "Barras: diferencia prevista en el resultado, en puntos porcentuales; líneas: "
        "intervalos de confianza de 95 %.",
    "School scores add up to district and state results.":
        "Los resultados de las escuelas se suman en resultados de distrito y del estado.",
    "On the %(form)s survey the state's average school score is %(v)s (95%% interval %(lo)s to "
    "%(hi)s) on the 1-99 scale":
        "En la encuesta de %(form)s, el resultado promedio de las escuelas del estado es %(v)s "
        "(intervalo de 95 %%: %(lo)s a %(hi)s) en la escala de 1 a 99",
    "; the %(n)s districts with enough reported schools range from %(lo)s to %(hi)s":
        "; los %(n)s distritos con suficientes escuelas con resultados van de %(lo)s a %(hi)s",
    "%(n)s districts had too few reported schools to show a result without revealing single "
    "schools.":
        "%(n)s distritos tenían muy pocas escuelas con resultados como para mostrar un "
        "resultado sin revelar escuelas individuales.",
    "About %(d)s%% of the variation in answers lies between districts and %(s)s%% between "
    "schools within a district; the rest is between people in the same school.":
        "Cerca del %(d)s %% de la variación en las respuestas está entre distritos y el %(s)s "
        "%% entre escuelas de un mismo distrito; el resto está entre personas de la misma "
        "escuela.",
    "Differences between schools in the same district are larger than differences between "
    "districts, so districts can learn from their own strong schools.":
        "Las diferencias entre escuelas del mismo distrito son mayores que las diferencias "
        "entre distritos, de modo que los distritos pueden aprender de sus propias escuelas "
        "sólidas.",
    "Teachers' and families' %(construct)s scores for the same school correlate at %(r)s (1 "
    "would be perfect agreement)":
        "Los resultados de maestros y familias en %(construct)s de una misma escuela tienen una "
        "correlación de %(r)s (1 sería un acuerdo perfecto)",
    "Teachers' and families' overall scores for the same school correlate at %(r)s (1 would be "
    "perfect agreement)":
        "Los resultados generales de maestros y familias de una misma escuela tienen una "
        "correlación de %(r)s (1 sería un acuerdo perfecto)",
    ", so the two surveys give related but different views":
        ", por lo que las dos encuestas dan visiones relacionadas pero distintas",
    "Districts' overall scores, %(form)s survey":
        "Resultados generales de los distritos, encuesta de %(form)s",
    "Districts' %(construct)s scores, %(form)s survey":
        "Resultados de los distritos en %(construct)s, encuesta de %(form)s",
    "Each point is a district's average school score (1-99) with its 95% interval; the dashed "
    "line is the state. Districts with too few reported schools are listed without a score.":
        "Cada punto es el resultado promedio de las escuelas de un distrito (1 a 99) con su "
        "intervalo de 95 %; la línea punteada es el estado. Los distritos con muy pocas "
        "escuelas con resultados aparecen sin resultado.",
    "Use the scores to plan improvement and to find schools whose practice others can learn "
    "from. Do not use them to rank schools, to judge individual staff, or to attach funding "
    "consequences.":
        "Use los resultados para planificar mejoras y para encontrar escuelas cuya práctica "
        "pueda servir de ejemplo. No los use para clasificar escuelas, para juzgar a miembros "
        "del personal ni para tomar decisiones de financiamiento.",
    "In this run %(n)s schools took part; %(k)s of %(total)s school scores (school, survey and "
    "practice) are not shown:":
        "En esta corrida participaron %(n)s escuelas; no se muestran %(k)s de %(total)s "
        "resultados (escuela, encuesta y práctica):",
    "%(n)s because fewer than %(min_n)s people answered": "%(n)s porque respondieron menos de "
                                                          "%(min_n)s personas",
    "%(n)s because too few of the school's %(who)s answered to represent it":
        "%(n)s porque respondió una parte demasiado pequeña de %(who)s de la escuela para "
        "representarla",
    "%(n)s because the number of %(who)s at the school is not known":
        "%(n)s porque no se conoce el número de %(who)s de la escuela",
    "Of the %(n)s scores shown, %(low)s come from so few respondents that their reliability is "
    "below %(target)s; they are shown with their wider interval and marked as less precise.":
        "De los %(n)s resultados que se muestran, %(low)s provienen de tan pocas respuestas que "
        "su confiabilidad es menor que %(target)s; se muestran con su intervalo más amplio y "
        "marcados como menos precisos.",
    "not available in this run": "no disponible en esta corrida",
    "Using the scores well": "Cómo usar bien los resultados",
    "Table": "Tabla", "Figure": "Figura", "Note.": "Nota.",
    "Data: simulated from plan %(plan)s (%(file)s), seed %(seed)s.":
        "Datos: simulados con el plan %(plan)s (%(file)s), semilla %(seed)s.",
    "Data: fielded files %(files)s; plan %(plan)s.":
        "Datos: archivos recogidos en campo %(files)s; plan %(plan)s.",
    # construct descriptions of the shipped bank (constructs.yaml)
    "Staff and families see themselves as one team; families' knowledge of their child is "
    "valued; barriers are not treated as excuses.":
        "El personal y las familias se ven como un solo equipo; se valora lo que las familias "
        "saben de sus hijos; las barreras no se usan como excusa.",
    "The principal sets a clear vision and models it, sets concrete expectations (for example, "
    "replying to families within 24 hours, two messages a week), holds staff to them, and "
    "provides time, training and budget for the work.":
        "La dirección fija una visión clara y la pone en práctica, establece expectativas "
        "concretas (por ejemplo, responder a las familias en 24 horas, dos mensajes por "
        "semana), pide cuentas al personal y ofrece tiempo, capacitación y presupuesto para "
        "este trabajo.",
    "Individual (not broadcast) contact about the child's own learning and progress, proactive "
    "and consistent, persisting until the family is reached, with learning resources for home.":
        "Contacto individual (no masivo) sobre el aprendizaje y el progreso de cada estudiante, "
        "por iniciativa de la escuela y constante, que insiste hasta llegar a la familia, con "
        "recursos de aprendizaje para la casa.",
    "Staff know families as people; relationships reach beyond the school building and last "
    "beyond the school year.":
        "El personal conoce a las familias como personas; las relaciones van más allá del "
        "edificio escolar y duran más que el año escolar.",
    "Beyond translation: dedicated staff, support services, a welcoming school, and "
    "student-mediated interactions such as student-led conferences.":
        "Más allá de la traducción: personal dedicado, servicios de apoyo, una escuela "
        "acogedora e interacciones en las que participan los estudiantes, como las "
        "conferencias dirigidas por ellos.",
    # --- figures of the brief ---------------------------------------------------------------
    "teacher form, each line one construct":
        "formulario de maestros, una línea por práctica",
    "family form, each line one construct": "formulario de familias, una línea por práctica",
    "all form, each line one construct": "todos los formularios, una línea por práctica",
    "respondents per school (k)": "personas que responden por escuela (k)",
    "reliability of the school mean": "confiabilidad del promedio de la escuela",
    "change in outcome from 10th to 90th percentile (percentage points, 95% CI)":
        "cambio en el resultado del percentil 10 al 90 (puntos porcentuales, IC de 95 %)",
    "poverty": "pobreza",
    "Chronic absenteeism": "Ausentismo crónico", "Attendance": "Asistencia",
    "Math proficiency": "Competencia en matemáticas",
    "Change in chronic absenteeism": "Cambio en el ausentismo crónico",
    "Change in attendance": "Cambio en la asistencia",
    "Change in ELA proficiency": "Cambio en la competencia en ELA",
    "Change in math proficiency": "Cambio en la competencia en matemáticas",
    "suppressed: too few reported schools": "no se muestra: muy pocas escuelas con resultados",
    "state": "estado",
    "district score (1-99) with 95% interval": "resultado del distrito (1 a 99) con intervalo de "
                                               "95 %",
    # --- cards ----------------------------------------------------------------------------
    "School %(id)s": "Escuela %(id)s", "District %(id)s": "Distrito %(id)s",
    "%(n)s people answered · response rate %(rate)s":
        "Respondieron %(n)s personas · tasa de respuesta %(rate)s",
    "%(n)s people answered · response rate unknown":
        "Respondieron %(n)s personas · tasa de respuesta desconocida",
    "Score": "Resultado", "95% interval": "Intervalo de 95 %", "Band": "Categoría",
    "Chance the band is right": "Probabilidad de acierto de la categoría",
    "less precise": "menos preciso",
    "Not shown: fewer than %(min_n)s people answered, so the answers could identify someone.":
        "No se muestra: respondieron menos de %(min_n)s personas, por lo que las respuestas "
        "podrían identificar a alguien.",
    "Not shown: %(why)s.": "No se muestra: %(why)s.",
    "Not shown: only %(rate)s of the school's %(who)s answered; at least %(min)s must answer "
    "for the result to represent the school.":
        "No se muestra: solo respondió el %(rate)s de %(who)s de la escuela; debe responder al "
        "menos el %(min)s para que el resultado represente a la escuela.",
    "Not shown: the number of %(who)s at the school is not known, so we cannot tell whether "
    "those who answered represent it.":
        "No se muestra: no se conoce el número de %(who)s de la escuela, así que no podemos "
        "saber si quienes respondieron la representan.",
    "How to read this card": "Cómo leer esta tarjeta",
    "Each score (1–99; 50 is the benchmark average) comes with a 95% interval, the range that "
    "very likely holds the school's true score. The band names the range the score falls in.":
        "Cada resultado (de 1 a 99; 50 es el promedio de referencia) viene con un intervalo de "
        "95 %, el rango que muy probablemente contiene el verdadero resultado de la escuela. La "
        "categoría indica el rango en el que cae el resultado.",
    "Bands: %(ranges)s.": "Categorías: %(ranges)s.",
    "%(band)s below %(x)s": "%(band)s por debajo de %(x)s",
    "%(band)s %(lo)s–%(hi)s": "%(band)s de %(lo)s a %(hi)s",
    "%(band)s %(x)s and above": "%(band)s de %(x)s en adelante",
    "Because a score from a few dozen people is uncertain, the last column gives the chance "
    "that the school's true score really is in the band shown.":
        "Como un resultado basado en unas decenas de personas es incierto, la última columna da "
        "la probabilidad de que el verdadero resultado de la escuela esté realmente en la "
        "categoría que se muestra.",
    "Across all schools shown, the band is right for about %(acc)s of scores (band accuracy) "
    "and a second survey would give the same band for about %(cons)s (band consistency).":
        "En el conjunto de escuelas que se muestran, la categoría es correcta para cerca del "
        "%(acc)s de los resultados (exactitud de la categoría) y una segunda encuesta daría la "
        "misma categoría para cerca del %(cons)s (consistencia de la categoría).",
    "Scores marked \"less precise\" come from few respondents (reliability below %(target)s): "
    "their interval is wide. No respondent is identified.":
        "Los resultados marcados como \"menos preciso\" provienen de pocas respuestas "
        "(confiabilidad menor que %(target)s): su intervalo es amplio. No se identifica a "
        "ninguna persona.",
}

CATALOGS: Mapping[str, Mapping[str, str]] = {"en": {}, "es": ES}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class Translator:
    """gettext for one language: the English message id, or its translation in ``lang``.

    Message ids are compared with runs of whitespace collapsed (templates wrap their lines).
    A missing translation is returned in English and recorded in `missing`.
    """

    def __init__(self, lang: str = "en") -> None:
        if lang not in LANGUAGES:
            raise ValueError(f"lang= must be one of {', '.join(map(repr, LANGUAGES))}; "
                             f"got {lang!r}.")
        self.lang = lang
        self._cat = {_norm(k): v for k, v in CATALOGS[lang].items()}
        self.missing: list[str] = []

    def gettext(self, message: str) -> str:
        if self.lang == "en":
            return message
        key = _norm(message)
        if key not in self._cat:
            self.missing.append(key)
            return message
        return self._cat[key]

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.gettext(singular if n == 1 else plural)

    def __call__(self, message: str, **kw: object) -> str:
        """``_("text %(name)s", name=...)`` with %-formatting of the translated text."""
        text = self.gettext(message)
        return text % kw if kw else text
