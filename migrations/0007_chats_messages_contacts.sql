-- Read models for chats, messages and contacts (projections "chats", "messages", "contacts").

CREATE TABLE rm_chats (
    id                   uuid NOT NULL UNIQUE,     -- the Chat aggregate's id: uuid5 of the key
    registry             text NOT NULL,
    session_id           text NOT NULL,
    jid                  text NOT NULL,
    kind                 text NOT NULL,            -- direct, group, newsletter, broadcast
    name                 text,
    last_message_id      uuid,
    last_message_at      timestamptz,
    last_message_text    text,
    last_message_from_me boolean,
    unread_count         integer NOT NULL DEFAULT 0,
    pinned               boolean NOT NULL DEFAULT false,
    muted_until          timestamptz,
    archived             boolean NOT NULL DEFAULT false,
    read_at              timestamptz,
    cleared_at           timestamptz,
    updated_at           timestamptz NOT NULL,
    position             bigint NOT NULL,
    PRIMARY KEY (registry, session_id, jid)
);
CREATE INDEX rm_chats_recent ON rm_chats (registry, session_id, last_message_at DESC NULLS LAST, jid);

CREATE TABLE rm_messages (
    id            uuid PRIMARY KEY,
    registry      text NOT NULL,
    session_id    text NOT NULL,
    chat          text NOT NULL,
    wa_id         text NOT NULL,
    direction     text NOT NULL,                   -- in, out
    kind          text NOT NULL,
    text          text,
    sender        text,
    push_name     text,
    quoted_id     text,
    mentions      text[] NOT NULL DEFAULT '{}',
    status        text NOT NULL,
    failure       text,
    edit_count    integer NOT NULL DEFAULT 0,
    revoked       boolean NOT NULL DEFAULT false,
    starred       boolean NOT NULL DEFAULT false,
    pinned_until  timestamptz,
    deleted       boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,            -- queued or received
    sent_at       timestamptz,
    updated_at    timestamptz NOT NULL,
    position      bigint NOT NULL
);
CREATE INDEX rm_messages_chat ON rm_messages (registry, session_id, chat, created_at DESC, id DESC);

-- Every status a message went through, with its time (the timeline).
CREATE TABLE rm_message_status (
    message_id  uuid NOT NULL,
    status      text NOT NULL,
    at          timestamptz NOT NULL,
    detail      text,
    position    bigint NOT NULL,
    PRIMARY KEY (message_id, position)
);

CREATE TABLE rm_message_reactions (
    message_id  uuid NOT NULL,
    actor       text NOT NULL,
    emoji       text NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (message_id, actor)
);

-- Each edit keeps the previous text (history of edits).
CREATE TABLE rm_message_edits (
    message_id     uuid NOT NULL,
    seq            integer NOT NULL,
    previous_text  text,
    text           text NOT NULL,
    actor          text,
    at             timestamptz NOT NULL,
    PRIMARY KEY (message_id, seq)
);

CREATE TABLE rm_contacts (
    registry        text NOT NULL,
    session_id      text NOT NULL,
    jid             text NOT NULL,
    lid             text,
    phone           text,
    push_name       text,
    business_name   text,
    last_seen_at    timestamptz,
    position        bigint NOT NULL,
    PRIMARY KEY (registry, session_id, jid)
);
