"""Every shape of the contract, declared once: request bodies, query parameters, socket
payloads, acks, events and response objects, with their field limits.

Validation, JSON encoding and the OpenAPI document are derived from these declarations
(app/contract.py). To add a shape: declare it here (an input as a `Shape`, an answer as
an `Out`, limits as `Meta` on the field, a rule between fields in `problems()`), read
input with `contract.read(Model, data)` / `contract.read_query(Model, request.args)`, build
an answer from a row with its `of()` and hand it to `json()` or an ack, and name the model
in the route's `@documented(body=…, query=…, ok=(status, Model))`.

Field names are the wire's camelCase: the attribute is the JSON name.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

import msgspec
from msgspec import Meta

from app.contract import Shape
from app.errors import ApiError

# ---- field limits --------------------------------------------------------------------

MAX_CONTENT = 5000
MAX_NAME = 200
MAX_EMAIL = 254
MAX_USER_ID = 200
MAX_CLIENT_MESSAGE_ID = 100
# A widget's random key for its conversation: long enough that it cannot be guessed.
MIN_CLIENT_SESSION_ID = 16
MAX_CLIENT_SESSION_ID = 100
MIN_PASSWORD = 8
# argon2 takes any length, but an unbounded one is a CPU-exhaustion lever.
MAX_PASSWORD = 256
MAX_LINK_TOKEN = 200
MAX_CURSOR = 100
# A sign-in's device (its User-Agent), cut to this many characters.
MAX_DEVICE = 200
# Message positions are PostgreSQL integers.
SEQ_MAX = 2**31 - 1
HISTORY_PAGE = 100
HISTORY_PAGE_MAX = 500
# Messages (and notes) one join_session ack carries at most; past it `hasMore`.
JOIN_PAGE_MAX = 500
INBOX_PAGE = 50
INBOX_PAGE_MAX = 100

# ---- field types ---------------------------------------------------------------------

SessionStatus = Literal["active", "closed"]
SenderType = Literal["user", "admin"]
StaffRole = Literal["admin", "agent"]
Availability = Literal["online", "busy", "offline"]
AssignmentReason = Literal["manual", "claim", "auto", "unavailable"]
SESSION_STATUSES: tuple[SessionStatus, ...] = get_args(SessionStatus)
SIDES: tuple[SenderType, ...] = get_args(SenderType)
STAFF_ROLES: tuple[StaffRole, ...] = get_args(StaffRole)
AVAILABILITIES: tuple[Availability, ...] = get_args(Availability)
ASSIGNMENT_REASONS: tuple[AssignmentReason, ...] = get_args(AssignmentReason)

Name = Annotated[str, Meta(max_length=MAX_NAME)]
Email = Annotated[
    str,
    Meta(max_length=MAX_EMAIL, extra={"email": True}, extra_json_schema={"format": "email"}),
]
NewPassword = Annotated[
    str,
    Meta(
        min_length=MIN_PASSWORD, max_length=MAX_PASSWORD, extra={"strip": False, "password": True}
    ),
]
Password = Annotated[str, Meta(max_length=MAX_PASSWORD, extra={"strip": False})]
Seq = Annotated[int, Meta(ge=0, le=SEQ_MAX)]
Timestamp = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]


def iso_or_none(value: Any) -> str | None:
    return None if value is None else iso(value)


def iso(value: dt.datetime | str) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, as JavaScript's toISOString() writes it."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_uuid(value: Any) -> uuid.UUID:
    """A row's id (SQLite hands back text) as a UUID."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


Row = Mapping[str, Any]


class Out(msgspec.Struct, kw_only=True):
    """An answer: a response body, an ack or an event payload."""


# ---- requests: /api/auth -------------------------------------------------------------


class Registration(Shape):
    """A new admin, as `POST /api/auth/register` and `helpline create-admin` take it."""

    email: Email
    password: NewPassword
    fullName: Name | None = None

    def problems(self) -> dict[str, str]:
        if self.password.strip().casefold() == self.email.casefold():
            return {"password": "must not be the email address"}
        return {}


class Login(Shape):
    # Not checked as an address: any spelling that was never registered just fails.
    email: Annotated[str, Meta(max_length=MAX_EMAIL)]
    password: Password


class PasswordChange(Shape):
    currentPassword: Password
    newPassword: NewPassword


class PasswordReset(Shape):
    token: Annotated[str, Meta(max_length=MAX_LINK_TOKEN)]
    password: NewPassword


class InvitationAcceptance(PasswordReset):
    fullName: Name | None = None


# ---- requests: /api/agents -----------------------------------------------------------


class NewMember(Shape):
    email: Email
    role: StaffRole
    fullName: Name | None = None


class MemberChange(Shape):
    json_schema_extra: ClassVar[dict[str, Any]] = {"minProperties": 1}

    fullName: Name | None = None
    role: StaffRole | None = None

    def problems(self) -> dict[str, str]:
        if self.fullName is None and self.role is None:
            return {"fullName": "or role is required"}
        return {}


# ---- requests: sessions and messages -------------------------------------------------


class NewSession(Shape):
    userId: Annotated[str, Meta(max_length=MAX_USER_ID)]
    userName: Name | None = None
    userEmail: Email | None = None
    clientSessionId: (
        Annotated[
            str,
            Meta(
                min_length=MIN_CLIENT_SESSION_ID,
                max_length=MAX_CLIENT_SESSION_ID,
                description="A random key the widget keeps: a retry with it answers the "
                "same active session",
            ),
        ]
        | None
    ) = None


class StatusChange(Shape):
    status: SessionStatus


class AvailabilityChange(Shape):
    status: Availability


class AssigneeChange(Shape):
    # Required, and null is a value: back to the queue.
    assigneeId: Annotated[uuid.UUID | None, Meta(description="A member's id, or null: unassigned")]
    # Absent: no compare-and-set; null: only if nobody owns it now.
    expectedAssigneeId: (
        Annotated[
            uuid.UUID | None,
            Meta(description="Change only if this (null: nobody) is still the owner"),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


# Whose sessions: the inbox and the search filters read it alike.
AssigneeFilter = Annotated[
    str,
    Meta(
        max_length=MAX_CURSOR,
        description="`me`, `unassigned`, `all` (the default) or a member's id",
    ),
]


class InboxQuery(Shape):
    status: Annotated[SessionStatus, Meta(description="Only this status")] | None = None
    limit: Annotated[
        int, Meta(ge=1, le=INBOX_PAGE_MAX, description=f"Page size, default {INBOX_PAGE}")
    ] = INBOX_PAGE
    before: (
        Annotated[
            str, Meta(max_length=MAX_CURSOR, description="An item's `cursor`: the page after it")
        ]
        | None
    ) = None
    assignee: AssigneeFilter | None = None
    label: (
        Annotated[str, Meta(max_length=MAX_LABEL, description="Only sessions carrying this label")]
        | None
    ) = None


class NewMessage(Shape):
    """A message send, as REST's body and the socket's send_message both carry it."""

    sessionId: uuid.UUID
    content: Annotated[str, Meta(min_length=1, max_length=MAX_CONTENT)]
    senderType: (
        Annotated[SenderType, Meta(description="Optional; must match the token's role")] | None
    ) = None
    clientMessageId: (
        Annotated[
            str,
            Meta(
                max_length=MAX_CLIENT_MESSAGE_ID,
                description="Client-chosen id; a retry with the same id returns the stored message",
            ),
        ]
        | None
    ) = None


class HistoryQuery(Shape):
    limit: Annotated[
        int,
        Meta(ge=1, le=HISTORY_PAGE_MAX, description=f"Page size, default {HISTORY_PAGE}"),
    ] = HISTORY_PAGE
    after: Annotated[Seq, Meta(description="Messages with a greater `seq`")] | None = None
    before: Annotated[Seq, Meta(description="Messages with a smaller `seq`")] | None = None


# ---- socket payloads -----------------------------------------------------------------


class Join(Shape):
    """`join_session`: also sent as the bare session id."""

    bare = "sessionId"

    sessionId: uuid.UUID
    after: Seq | None = None
    # Staff: the notes after this note position come in the ack too.
    notesAfter: Seq | None = None


class Leave(Shape):
    bare = "sessionId"
    sessionId: uuid.UUID


class TypingChange(Shape):
    sessionId: uuid.UUID
    isTyping: bool
    userType: SenderType | None = None


class ReadMark(Shape):
    messageId: uuid.UUID


# ---- answers: staff ------------------------------------------------------------------


class Admin(Out):
    id: uuid.UUID
    email: str
    fullName: str | None
    role: StaffRole
    createdAt: Timestamp

    @classmethod
    def of(cls, row: Row) -> Admin:
        return cls(
            id=row["id"],
            email=row["email"],
            fullName=row["full_name"],
            role=row["role"],
            createdAt=iso(row["created_at"]),
        )


class Member(Admin):
    """A staff member as the team list shows them."""

    active: Annotated[bool, Meta(description="False once deactivated")]
    invited: Annotated[bool, Meta(description="The invitation is not accepted yet")]
    deactivatedAt: Timestamp | None
    lastSeenAt: Timestamp | None
    online: Annotated[bool, Meta(description="Has a socket open on any worker now")]
    availability: Annotated[Availability, Meta(description="The member's own switch")]
    available: Annotated[
        bool,
        Meta(
            description="`online` and connected (within AVAILABILITY_GRACE): routing may "
            "give them sessions"
        ),
    ]

    @classmethod
    def of_member(cls, row: Row, online: bool, available: bool) -> Member:
        return cls(
            id=row["id"],
            email=row["email"],
            fullName=row["full_name"],
            role=row["role"],
            createdAt=iso(row["created_at"]),
            active=row["deactivated_at"] is None,
            # No password yet: the invitation is not accepted, they cannot log in.
            invited=not row["password"],
            deactivatedAt=iso_or_none(row["deactivated_at"]),
            lastSeenAt=iso_or_none(row["last_seen_at"]),
            online=online,
            availability=row["availability"],
            available=available,
        )


class SignedIn(Out):
    """What register, login and the link redemptions answer."""

    token: str
    admin: Admin


class SignIn(Out):
    id: uuid.UUID
    device: Annotated[str, Meta(description="The User-Agent it signed in with")] | None
    ip: str | None
    createdAt: Timestamp
    lastSeenAt: Timestamp | None
    current: bool

    @classmethod
    def of(cls, row: Row, current: bool) -> SignIn:
        return cls(
            id=row["id"],
            device=row["device"],
            ip=row["ip"],
            createdAt=iso(row["created_at"]),
            lastSeenAt=iso_or_none(row["last_seen_at"]),
            current=current,
        )


class Invitation(Out):
    id: uuid.UUID
    url: Annotated[str, Meta(description="The demo console's page that accepts it")]
    token: Annotated[str, Meta(description="Single use; only its hash is stored")]
    expiresAt: Timestamp


class Invited(Out):
    agent: Member
    invitation: Invitation


# ---- answers: messages and sessions --------------------------------------------------


class Message(Out):
    id: uuid.UUID
    sessionId: uuid.UUID
    seq: Annotated[int, Meta(description="Per-session position; the history cursor")]
    senderType: SenderType
    senderId: str | None
    senderName: Annotated[str, Meta(description="A staff sender's display name")] | None
    content: str
    isRead: bool
    clientMessageId: str | None
    createdAt: Timestamp

    @classmethod
    def of(cls, row: Row) -> Message:
        return cls(
            id=row["id"],
            sessionId=row["session_id"],
            seq=row["seq"],
            senderType=row["sender_type"],
            senderId=row["sender_id"],
            senderName=row["sender_name"],
            content=row["content"],
            isRead=bool(row["is_read"]),
            clientMessageId=row["client_message_id"],
            createdAt=iso(row["created_at"]),
        )


class Session(Out):
    id: uuid.UUID
    userId: str
    userName: str | None
    userEmail: str | None
    status: SessionStatus
    lastSeq: int
    createdAt: Timestamp
    updatedAt: Timestamp
    lastActivityAt: Timestamp
    lastMessage: Message | None
    unreadCount: int
    assigneeId: Annotated[uuid.UUID, Meta(description="The owner; null: waiting")] | None
    assigneeName: Annotated[str, Meta(description="The owner's name")] | None
    assignedAt: Timestamp | None
    assignmentReason: (
        Annotated[
            AssignmentReason,
            Meta(description="Why the owner has it, or why it went back to the queue"),
        ]
        | None
    )
    # Private (app/domain/visibility.py): staff answers carry it, a customer's never.
    labels: (
        Annotated[
            list[str], Meta(description="Staff only: a customer's view of its session has none")
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET

    @classmethod
    def fields_of(
        cls, row: Row, last: Row | None, unread: int, assignee_name: str | None
    ) -> dict[str, Any]:
        return {
            "id": row["id"],
            "userId": row["user_id"],
            "userName": row["user_name"],
            "userEmail": row["user_email"],
            "status": row["status"],
            "lastSeq": row["last_seq"],
            "createdAt": iso(row["created_at"]),
            "updatedAt": iso(row["updated_at"]),
            "lastActivityAt": iso(row["last_activity_at"]),
            "lastMessage": Message.of(last) if last else None,
            "unreadCount": unread,
            "assigneeId": row["assignee_id"],
            # The owner's display name, never an email (the customer's GET shows it too).
            "assigneeName": assignee_name,
            "assignedAt": iso_or_none(row["assigned_at"]),
            "assignmentReason": row["assignment_reason"],
        }

    @classmethod
    def of(
        cls,
        row: Row,
        last: Row | None = None,
        unread: int = 0,
        assignee_name: str | None = None,
        labels: list[str] | msgspec.UnsetType = msgspec.UNSET,
    ) -> Session:
        return cls(**cls.fields_of(row, last, unread, assignee_name), labels=labels)


class InboxItem(Session, kw_only=True):
    cursor: Annotated[str, Meta(description="Pass as `before` for the next inbox page")]
    customerOnline: Annotated[
        bool, Meta(description="The customer has a socket open now (false while Redis is down)")
    ]


class Assignment(Out):
    """One change of a session's owner, as its history lists it."""

    assigneeId: uuid.UUID | None
    previousAssigneeId: uuid.UUID | None
    reason: AssignmentReason
    actorId: Annotated[uuid.UUID, Meta(description="Who made it; null: routing")] | None
    at: Timestamp


class SessionAssigned(Out):
    """`session_assigned`, to staff and the session's room (a display name, never an
    email: the customer's widget hears it too)."""

    sessionId: uuid.UUID
    assigneeId: uuid.UUID | None
    assigneeName: str | None
    previousAssigneeId: uuid.UUID | None
    reason: AssignmentReason
    assignedAt: Timestamp | None


class AgentPresence(Out):
    """`agent_presence`, to staff."""

    agentId: uuid.UUID
    status: Availability
    available: bool


class OpenedSession(Session, kw_only=True):
    customerToken: Annotated[
        str, Meta(description="Reads and writes this session only (a customer token)")
    ]


# ---- answers: socket acks and events -------------------------------------------------


class Problem(Out):
    """What a refused socket event's ack carries as `error`."""

    code: str
    message: str
    retryable: bool


class Refused(Out):
    """A socket event's ack when it failed."""

    ok: Literal[False]
    error: Problem

    @classmethod
    def of(cls, error: ApiError) -> Refused:
        problem = Problem(code=error.code, message=error.message, retryable=error.retryable)
        return cls(ok=False, error=problem)


class Rejoin(Out):
    """`rejoin`, after Redis came back: join again with `after` (a session's room), or
    reload the inbox (staff, `sessionId` null)."""

    sessionId: uuid.UUID | None


class SessionRevoked(Out):
    """`session_revoked`, just before the server disconnects a socket whose sign-in ended."""

    reason: str
    code: str


class LegacyError(Out):
    """`error`, which clients written for the original listen for instead of acks."""

    message: str


class Typing(Out):
    user: bool
    admin: bool


class Joined(Out):
    """`join_session`'s ack: what a (re)joining client needs."""

    sessionId: uuid.UUID
    messages: list[Message]
    hasMore: bool
    typing: Typing
    customerOnline: bool
    queuePosition: (
        Annotated[int, Meta(description="A waiting session's place in the routing queue (1: next)")]
        | None
    )
    # Staff who asked (`notesAfter`) only: app/domain/notes.py decides through visibility.
    notes: list[Note] | msgspec.UnsetType = msgspec.UNSET
    notesHasMore: bool | msgspec.UnsetType = msgspec.UNSET


class Left(Out):
    sessionId: uuid.UUID


class Sent(Out):
    message: Message
    created: bool


class Read(Out):
    message: Message


class TypingEvent(Out):
    """`user_typing`, and the `typing` ack."""

    sessionId: uuid.UUID
    userType: SenderType
    isTyping: bool


class Presence(Out):
    """`customer_presence`."""

    sessionId: uuid.UUID
    online: bool


# ---- answers: health -----------------------------------------------------------------


class Desk(Out):
    """`GET /demo/desk`: whether the desk has an admin yet."""

    hasAdmin: bool


class Liveness(Out):
    status: Literal["ok"]


class Checks(Out):
    database: Annotated[str, Meta(description="`ok`, or `down: <error>`")]
    redis: Annotated[str, Meta(description="`ok`, `down: <error>`, or `embedded`")]


class RelayCounters(Out):
    """The answering worker's long-polling relay (app/realtime/affinity.py `RelayStats`)."""

    worker: Annotated[str, Meta(description="This worker's id (Engine.IO sids start with it)")]
    relayed: Annotated[int, Meta(description="Polling requests forwarded to their owner")]
    answered: Annotated[int, Meta(description="Requests other workers forwarded here")]
    timeouts: int
    refused: int
    ownerGone: int
    lateReplies: int
    inFlight: int
    longestWaitMs: int


class Readiness(Out):
    status: Literal["ok", "unavailable"]
    checks: Checks
    relay: RelayCounters | msgspec.UnsetType = msgspec.UNSET


# ---- the workspace: notes, labels, canned responses, search ----------------------------

MAX_LABELS = 20
MAX_LABEL = 50
# A short code as stored; typed, it may carry a leading `/` (one more character).
MAX_SHORT_CODE = 50
MAX_QUERY = 200
NOTE_PAGE = 100
CANNED_PAGE = 20
CANNED_PAGE_MAX = 100
SEARCH_PAGE = 20
SEARCH_PAGE_MAX = 100
SearchMode = Literal["auto", "words", "fragment"]
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)
Content = Annotated[str, Meta(min_length=1, max_length=MAX_CONTENT)]
Label = Annotated[str, Meta(max_length=MAX_LABEL)]


class NewNote(Shape):
    content: Content


class NotesQuery(Shape):
    after: Annotated[Seq, Meta(description="Notes with a greater `noteSeq`")] | None = None
    limit: Annotated[
        int, Meta(ge=1, le=HISTORY_PAGE_MAX, description=f"Page size, default {NOTE_PAGE}")
    ] = NOTE_PAGE


class Note(Out):
    """A private note: staff only, never in anything a customer receives."""

    id: uuid.UUID
    sessionId: uuid.UUID
    noteSeq: Annotated[
        int,
        Meta(description="Per-session position of the note (its own cursor, never a message seq)"),
    ]
    authorId: uuid.UUID | None
    authorName: Annotated[str, Meta(description="The author's display name when written")] | None
    content: str
    createdAt: Timestamp

    @classmethod
    def of(cls, row: Row) -> Note:
        return cls(
            id=as_uuid(row["id"]),
            sessionId=as_uuid(row["session_id"]),
            noteSeq=row["seq"],
            authorId=None if row["author_id"] is None else as_uuid(row["author_id"]),
            authorName=row["author_name"],
            content=row["content"],
            createdAt=iso(row["created_at"]),
        )


class LabelsChange(Shape):
    labels: Annotated[
        list[Label],
        Meta(
            max_length=MAX_LABELS,
            description=f"The whole set (replaced): 1-{MAX_LABEL} characters of a-z, 0-9 "
            "and - _ : .",
        ),
    ]


class LabelUse(Out):
    label: str
    sessions: Annotated[int, Meta(description="Sessions carrying it")]


class CannedQuery(Shape):
    q: (
        Annotated[
            str,
            Meta(
                max_length=MAX_QUERY,
                description="Part of a short code (a leading `/` is ignored) or text",
            ),
        ]
        | None
    ) = None
    sessionId: Annotated[uuid.UUID, Meta(description="Fill placeholders for it")] | None = None
    limit: Annotated[int, Meta(ge=1, le=CANNED_PAGE_MAX, description=f"Default {CANNED_PAGE}")] = (
        CANNED_PAGE
    )


ShortCode = Annotated[str, Meta(max_length=MAX_SHORT_CODE + 1)]


class NewCanned(Shape):
    shortCode: Annotated[ShortCode, Meta(description="Picked by typing `/<shortCode>`")]
    content: Content
    title: Name | None = None


class CannedChange(Shape):
    json_schema_extra: ClassVar[dict[str, Any]] = {"minProperties": 1}

    shortCode: ShortCode | None = None
    title: Name | None = None
    content: Content | None = None

    def problems(self) -> dict[str, str]:
        if self.shortCode is None and self.title is None and self.content is None:
            return {"content": "give shortCode, title or content"}
        return {}


class Canned(Out):
    id: uuid.UUID
    shortCode: str
    title: str | None
    content: Annotated[str, Meta(description="May hold `{{customer.name}}`-style placeholders")]
    createdBy: uuid.UUID | None
    createdAt: Timestamp
    updatedAt: Timestamp
    rendered: (
        Annotated[str, Meta(description="With `sessionId`: the content, placeholders filled")]
        | msgspec.UnsetType
    ) = msgspec.UNSET

    @classmethod
    def of(cls, row: Row) -> Canned:
        return cls(
            id=as_uuid(row["id"]),
            shortCode=row["short_code"],
            title=row["title"],
            content=row["content"],
            createdBy=None if row["created_by"] is None else as_uuid(row["created_by"]),
            createdAt=iso(row["created_at"]),
            updatedAt=iso(row["updated_at"]),
        )


class SessionSearchQuery(Shape):
    q: Annotated[str, Meta(max_length=MAX_QUERY, description="What to look for")]
    status: Annotated[SessionStatus, Meta(description="Sessions of this status")] | None = None
    label: (
        Annotated[str, Meta(max_length=MAX_LABEL, description="Sessions carrying this label")]
        | None
    ) = None
    assignee: AssigneeFilter | None = None
    limit: Annotated[
        int, Meta(ge=1, le=SEARCH_PAGE_MAX, description=f"Page size, default {SEARCH_PAGE}")
    ] = SEARCH_PAGE
    before: (
        Annotated[
            str, Meta(max_length=MAX_CURSOR, description="An item's `cursor`: the page after it")
        ]
        | None
    ) = None


class MessageSearchQuery(SessionSearchQuery):
    mode: (
        Annotated[
            SearchMode,
            Meta(description="`words`, `fragment` (3+ characters) or `auto` (the default)"),
        ]
        | None
    ) = None


class HitSession(Out):
    id: uuid.UUID
    userId: str
    userName: str | None
    userEmail: str | None
    status: SessionStatus
    lastActivityAt: Timestamp
    assigneeId: uuid.UUID | None


class Hit(Out):
    message: Message
    session: HitSession
    highlight: Annotated[
        str, Meta(description="HTML-escaped snippet whose only markup is `<mark>` around the hits")
    ]
    cursor: Annotated[str, Meta(description="Pass as `before` for the next page")]


# ---- socket events: what each carries, declared once ------------------------------------


@dataclass(frozen=True)
class ClientEvent:
    """An event a client sends: its payload, its ack on success, and what it does."""

    name: str
    payload: type[Shape]
    ack: type[Out]
    text: str


@dataclass(frozen=True)
class ServerEvent:
    """An event the server sends: who hears it, its payload, and what it means."""

    name: str
    to: str
    payload: type[Out]
    text: str


CLIENT_EVENTS = (
    ClientEvent(
        "join_session",
        Join,
        Joined,
        "`queuePosition` is the session's place in the routing queue (1: next) while "
        "routing is on and it waits, else null; `messages` are those with `seq > after` "
        f"(up to {JOIN_PAGE_MAX} and `JOIN_PAGE_CHARS` characters of content; `hasMore` says "
        "page on with REST); for staff with `notesAfter`, also `notes` (`noteSeq > "
        f"notesAfter`, up to {JOIN_PAGE_MAX}) and `notesHasMore` (a customer's ack never has "
        "them)",
    ),
    ClientEvent("leave_session", Leave, Left, ""),
    ClientEvent(
        "send_message",
        NewMessage,
        Sent,
        "acked after the message is committed. A retry with the same `clientMessageId` "
        "answers the stored message with `created: false` and is not broadcast again. "
        "`senderType`, if given, must match the token. On failure the sender also gets the "
        "original backend's `error` event",
    ),
    ClientEvent(
        "typing",
        TypingChange,
        TypingEvent,
        "a typing state lives `TYPING_TTL` seconds unless repeated; the room hears changes only",
    ),
    ClientEvent("mark_read", ReadMark, Read, "only the other side's messages"),
)

SERVER_EVENTS = (
    ServerEvent(
        "new_message",
        "the session's room and `admins` (once per socket)",
        Message,
        "the message, as REST returns it",
    ),
    ServerEvent(
        "message_read", "the session's room and `admins`", Message, "the message, `isRead: true`"
    ),
    ServerEvent(
        "user_typing",
        "the session's room, not the typer; a customer's typing also `admins` (an inbox "
        "shows it on every row)",
        TypingEvent,
        "`isTyping: false` also when a typer disconnects or goes silent for `TYPING_TTL`",
    ),
    ServerEvent(
        "customer_presence",
        "the session's room and `admins`",
        Presence,
        "online while any of the customer's connections, on any worker, is (a reloaded inbox "
        "starts from each item's `customerOnline`)",
    ),
    ServerEvent("session_created", "`admins`", Session, "the session (without its token)"),
    ServerEvent(
        "session_updated",
        "`admins` (the whole session); for a status change also the session's room, a "
        "customer's view (no `labels`)",
        Session,
        "the session; a staff socket that joined the room hears both copies of a status "
        "change: apply them as a merge",
    ),
    ServerEvent(
        "session_assigned",
        "the session's room and `admins`",
        SessionAssigned,
        "`reason` is `manual`, `claim`, `auto` or `unavailable` (`assigneeId: null`: back in "
        "the queue); a display name, never an email",
    ),
    ServerEvent(
        "agent_presence",
        "`admins`",
        AgentPresence,
        "a member's switch and whether routing may give them sessions",
    ),
    ServerEvent("new_note", "`admins` only", Note, "a private note, as `POST …/notes` answers it"),
    ServerEvent(
        "rejoin",
        "each session room and `admins` on a worker whose Redis listener lost Redis and is back",
        Rejoin,
        "events for that session may have been missed, so join again with `{sessionId, "
        "after: <last seq>}`; `{sessionId: null}` (staff): reload the inbox",
    ),
    ServerEvent(
        "session_revoked",
        "the one socket, just before the server disconnects it",
        SessionRevoked,
        "`reason` is `logout`, `logout_all`, `password_changed`, `password_reset`, "
        "`deactivated` (however the worker learnt of it), `signed_out_by_admin`, `revoked` "
        "(ended behind the API's back) or `token_expired`; `code` is the 401 code REST would "
        "answer",
    ),
    ServerEvent(
        "error",
        "the sender of a `send_message` that failed",
        LegacyError,
        "what clients written for the original backend listen for instead of acks",
    ),
)


def _fields_of(shape: type[msgspec.Struct]) -> str:
    """`{a, b?}`: a shape's wire fields, `?` for those that may be left out."""
    names = [
        f"{info.encode_name}{'' if info.required else '?'}"
        for info in msgspec.structs.fields(shape)
    ]
    return "`{" + ", ".join(names) + "}`"


def events_table() -> str:
    """The README's two socket event tables, from CLIENT_EVENTS and SERVER_EVENTS."""
    lines = ["| client → server | payload | ack on success |", "|---|---|---|"]
    for ce in CLIENT_EVENTS:
        bare = ce.payload.bare
        payload = (f"`{bare}`, or " if bare else "") + _fields_of(ce.payload)
        ack = f"{ce.ack.__name__} {_fields_of(ce.ack)}" + (f"; {ce.text}" if ce.text else "")
        lines.append(f"| `{ce.name}` | {payload} | {ack} |")
    lines += ["", "| server → client | to | payload |", "|---|---|---|"]
    for se in SERVER_EVENTS:
        # A long shape (a message, a session) by its name: the field table has its fields.
        many = len(msgspec.structs.fields(se.payload)) > 8
        fields = "" if many else f" {_fields_of(se.payload)}"
        payload = f"{se.payload.__name__}{fields}: {se.text}"
        lines.append(f"| `{se.name}` | {se.to} | {payload} |")
    return "\n".join(lines) + "\n"


def declared() -> list[type[msgspec.Struct]]:
    """Every shape of this module, in the order declared."""
    return [
        value
        for value in globals().values()
        if isinstance(value, type)
        and issubclass(value, Shape | Out)
        and value.__module__ == __name__
        and value not in (Out,)
    ]


if __name__ == "__main__":
    import sys

    from app.contract import markdown_table

    if sys.argv[1:] == ["--markdown"]:
        print(markdown_table(declared()), end="")
    elif sys.argv[1:] == ["--events"]:
        print(events_table(), end="")
    else:
        sys.exit("usage: python -m app.models --markdown | --events")
