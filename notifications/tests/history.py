"""Past loans with their sent reminders, written in bulk: a history for the learner and the experiment report."""

from __future__ import annotations

from datetime import datetime, timedelta

from assets.models import Attribution, Client, Duree, Materiel
from assets.tests.factories import ClientFactory, MaterielFactory
from notifications.models import Audience, Canal, NotificationLog, Statut, TypeNotification


def past_loans(
    count: int,
    *,
    sent_at: datetime,
    on_time: int,
    client: Client | None = None,
    materiel: Materiel | None = None,
    type_notification: str = TypeNotification.RAPPEL_J_MOINS_1,
    canal: str = Canal.EMAIL,
    read: int = 0,
    variant=None,
    open_late: int = 0,
) -> list[Attribution]:
    """``count`` long loans reminded at ``sent_at``, due a day later; ``on_time`` of them back by the due time,
    ``open_late`` still out (late), the rest back late; the first ``read`` reminders reported read."""
    client = client or ClientFactory()  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
    materiel = materiel or MaterielFactory()  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
    due = sent_at + timedelta(days=1)
    start = sent_at - timedelta(days=2)
    loans = []
    for index in range(count):
        returned = None
        if index < on_time:
            returned = due - timedelta(hours=1)
        elif index < count - open_late:
            returned = due + timedelta(hours=5)
        loans.append(
            Attribution(
                materiel=materiel,
                client=client,
                date_debut=start,
                date_retour_prevue=due,
                date_retour_effective=returned,
                statut=Attribution.Statut.RESTITUEE if returned else Attribution.Statut.EN_COURS,
                duree=Duree.LONG,
            )
        )
    if open_late:
        # One open loan per material: each still-open loan gets its own.
        for loan in loans[count - open_late :]:
            loan.materiel = MaterielFactory()  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
    loans = Attribution.objects.bulk_create(loans)
    NotificationLog.objects.bulk_create(
        NotificationLog(
            attribution=loan,
            type_notification=type_notification,
            canal=canal,
            audience=Audience.CLIENT,
            statut=Statut.ENVOYEE,
            date_scheduled=sent_at,
            date_envoi=sent_at,
            duree_emprunt=Duree.LONG,
            delivery_status="read" if index < read else "",
            variant=variant,
        )
        for index, loan in enumerate(loans)
    )
    if read:
        # The read status arrived before the due time.
        NotificationLog.objects.filter(attribution__in=loans, delivery_status="read").update(updated_at=sent_at)
    return loans
