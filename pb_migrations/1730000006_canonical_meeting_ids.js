/// <reference path="../pb_data/types.d.ts" />
// One spelling per recording (issue 20). From this release a queue row's `meeting_id` is a
// Fathom recording id written as 1 to 18 ASCII digits without leading zeros (the hooks in
// pb_hooks/queue.pb.js refuse anything else, and store `01004` as `1004`). Rows written before:
// - ids with leading zeros get their canonical spelling; an active one whose meeting is already
//   active under another spelling is cancelled first (the one-active-row index would refuse it),
//   saying why: the row spelled canonically is kept, else the one with the lowest id;
// - an active row whose id is no recording id at all (other scripts' digits, letters, blanks)
//   fails, saying what to do. Rows that ended keep what they have.
// Data only: no collection changes, so no snapshot. The rollback leaves the data as it is (the
// old spellings were duplicates, nothing to restore).
const CANONICAL =
  "CASE WHEN ltrim(meeting_id, '0') = '' THEN '0' ELSE ltrim(meeting_id, '0') END";
const LEADING_ZERO =
  "meeting_id GLOB '0[0-9]*' AND NOT meeting_id GLOB '*[^0-9]*' AND length(meeting_id) <= 18";
const ACTIVE = "status IN ('pending', 'processing')";

migrate((app) => {
  const now = new Date().toISOString().replace("T", " ");
  app
    .db()
    .newQuery(
      "UPDATE queue AS q SET status = 'cancelled', position = 0, completed_at = {:now}," +
        " error_message = 'Cancelled: this meeting was queued twice under two spellings of its" +
        " id; the other row moves it', updated = {:now}" +
        ` WHERE ${LEADING_ZERO.replace(/meeting_id/g, "q.meeting_id")} AND q.${ACTIVE}` +
        " AND EXISTS (SELECT 1 FROM queue AS o WHERE o.id != q.id AND o.user_id = q.user_id" +
        ` AND o.${ACTIVE} AND ${CANONICAL.replace(/meeting_id/g, "o.meeting_id")} =` +
        ` ${CANONICAL.replace(/meeting_id/g, "q.meeting_id")} AND (o.meeting_id =` +
        ` ${CANONICAL.replace(/meeting_id/g, "o.meeting_id")} OR o.id < q.id))`,
    )
    .bind({ now: now })
    .execute();
  app
    .db()
    .newQuery(`UPDATE queue SET meeting_id = ${CANONICAL}, updated = {:now} WHERE ${LEADING_ZERO}`)
    .bind({ now: now })
    .execute();
  app
    .db()
    .newQuery(
      "UPDATE queue SET status = 'failed', position = 0, completed_at = {:now}, next_attempt_at" +
        " = '', wait_reason = '', error_message = 'This row''s meeting id ' ||" +
        " quote(substr(meeting_id, 1, 40)) || ' is not a Fathom recording id (1 to 18 digits" +
        " 0-9): queue the meeting again by its id', updated = {:now}" +
        ` WHERE ${ACTIVE} AND (meeting_id = '' OR meeting_id GLOB '*[^0-9]*'` +
        " OR length(meeting_id) > 18)",
    )
    .bind({ now: now })
    .execute();
}, (_app) => {
  // Nothing to undo: the rows keep their canonical ids and their ends.
});
