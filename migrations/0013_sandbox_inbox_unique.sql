-- WhatsApp ignores a second delivery of a message id an account already has from that
-- sender (a message sent again after a crash, with the id it was first sent with): so does
-- the sandbox's inbox of external accounts. Earlier duplicates keep their first copy.
DELETE FROM sandbox_inbox later
 USING sandbox_inbox first
 WHERE later.phone = first.phone AND later.sender = first.sender AND later.wa_id = first.wa_id
   AND later.id > first.id;
CREATE UNIQUE INDEX sandbox_inbox_message ON sandbox_inbox (phone, sender, wa_id);
