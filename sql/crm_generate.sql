-- Synthetic data generator for the reference CRM (sql/crm_schema.sql).
--
--   SELECT public.crm_generate(orgs, contacts_per_org
--                              [, messages_per_conversation => 8]
--                              [, seed => 0.42]);
--
-- Adds `orgs` new organizations, each with `contacts_per_org` contacts and
-- everything hanging off them, and returns a jsonb object with the number of
-- rows inserted per table. Everything is set-based (INSERT ... SELECT over
-- generate_series); ids come from the identity defaults, so rows inserted by
-- hand afterwards just work, and calling it again appends more tenants.
--
-- Deterministic for a given seed and starting state: it calls setseed(seed)
-- first, and every timestamp is relative to the start of the current day
-- (date_trunc('day', now())), so two runs on the same day on empty
-- databases produce identical data.
--
-- Shape, per organization: 4-6 users (the first one is the admin, ~40% have a
-- meta_user_id), one team membership per user, 5 labels, 3 segments, ~20
-- audit log rows over the last 3 years, 2 invoices a month over the last 10
-- years, channel connections for users with a Meta id (1-3) and some others.
-- Per contact: 0-3 labels, 0-2 segments, 1-4 lifecycle events, 1-3
-- conversations of about `messages_per_conversation` messages (contact and
-- agent alternating, +-25%), ~1 in 6 messages with a media row, 0-2 orders of
-- 1-3 items, 0-1 reorder cycle, 0-3 ai_logs (half tied to a conversation),
-- 0-2 ai_prompt_cache rows.
--
-- Ends with ANALYZE of every CRM table.

CREATE OR REPLACE FUNCTION public.crm_generate(
    orgs                      int,
    contacts_per_org          int,
    messages_per_conversation int DEFAULT 8,
    seed                      double precision DEFAULT 0.42)
RETURNS jsonb
LANGUAGE plpgsql
-- generate_series() over non-constant bounds is estimated at 1000 rows, which
-- makes every statement look huge and triggers JIT compilation (~0.2 s each).
SET jit = off
AS $fn$
DECLARE
    v_anchor   timestamptz := date_trunc('day', now());
    v_mpc      int := messages_per_conversation;
    v_counts   jsonb := '{}'::jsonb;
    v_n        bigint;
    -- high-water marks: rows with a larger id were inserted by this call
    v_org0     bigint;
    v_user0    bigint;
    v_contact0 bigint;
    v_conv0    bigint;
    v_msg0     bigint;
    v_order0   bigint;
    v_item0    bigint;

    v_first    text[] := ARRAY['Maria','José','Ana','João','Priya','Rahul','Aisha','Mohammed',
                               'Chen','Wei','Fatima','Lucas','Sofia','Carlos','Amara','Kwame',
                               'Emma','Liam','Olivia','Noah','Isabela','Gabriel','Ananya','Arjun',
                               'Yuki','Hana','Olga','Ivan','Zanele','Tunde','Laura','Diego'];
    v_last     text[] := ARRAY['Silva','Santos','Oliveira','Sharma','Patel','Khan','Ahmed','Wang',
                               'Li','Garcia','Martinez','Rodriguez','Okafor','Mensah','Smith','Johnson',
                               'Brown','Costa','Pereira','Gupta','Singh','Tanaka','Sato','Ivanova',
                               'Petrov','Dlamini','Adeyemi','Müller','Schmidt','Rossi','Ferreira','Nair'];
    v_orgword  text[] := ARRAY['Sunrise','Blue Lotus','Green Leaf','Nova','Atlas','Pixel','Harbor',
                               'Maple','Coral','Saffron','Nimbus','Juniper','Orbit','Cedar','Zenith'];
    v_orgkind  text[] := ARRAY['Pharmacy','Bakery','Pet Supplies','Cosmetics','Coffee Roasters',
                               'Fashion','Electronics','Organic Market','Florist','Bookshop'];
    v_country  text[] := ARRAY['BR','IN','US','DE','GB','NG','ID','MX','ZA','ES'];
    v_currency text[] := ARRAY['BRL','INR','USD','EUR','GBP','NGN','IDR','MXN','ZAR','EUR'];
    v_cc       text[] := ARRAY['55','91','1','49','44','234','62','52','27','34'];
    v_domain   text[] := ARRAY['gmail.com','yahoo.com','outlook.com','hotmail.com','icloud.com',
                               'proton.me','example.com','mail.com'];
    v_stage    text[] := ARRAY['lead','prospect','customer','repeat_customer'];
    v_label    text[] := ARRAY['VIP','Wholesale','New','Follow up','Complaint'];
    v_lcolor   text[] := ARRAY['#e11d48','#2563eb','#16a34a','#f59e0b','#7c3aed'];
    v_segment  text[] := ARRAY['Active buyers','Dormant 90d','Newsletter'];
    v_segdef   text[] := ARRAY['orders in last 30 days','no order in 90 days','opted in to broadcasts'];
    v_cbody    text[] := ARRAY['Hi! Is this still available?',
                               'Can I order the same as last time?',
                               'What time do you close today?',
                               'My address changed, please deliver to the new one.',
                               'Thanks, received it!',
                               'Do you have it in a bigger size?',
                               'Can you send me the invoice by email?',
                               'The package arrived damaged :(',
                               'How much is delivery to my area?',
                               'Please call me back on this number.'];
    v_abody    text[] := ARRAY['Hello! How can I help you today?',
                               'Yes, it is in stock. Shall I reserve one for you?',
                               'Your order has been shipped.',
                               'We are open until 8pm.',
                               'Sorry about that, we will send a replacement.',
                               'Delivery is free above 50.',
                               'Done, I have updated your address.',
                               'Here is your invoice.',
                               'Thank you for your purchase!',
                               'Can you confirm your full name for the order?'];
    v_accents  text := 'áàãâéêíóôõúüçñÁÉÍÓÚÜÇÑ';
    v_plain    text := 'aaaaeeiooouucnAEIOUUCN';
    v_kind     text[] := ARRAY['image','audio','document'];
    v_mime     text[] := ARRAY['image/jpeg','audio/ogg','application/pdf'];
    v_provider text[] := ARRAY['meta','instagram','telegram'];
    v_action   text[] := ARRAY['user.login','user.logout','contact.export','contact.update',
                               'conversation.assign','settings.update','user.invite',
                               'password.reset','broadcast.send','channel.connect'];
BEGIN
    IF orgs IS NULL OR orgs < 0 OR contacts_per_org IS NULL OR contacts_per_org < 0 THEN
        RAISE EXCEPTION 'crm_generate: orgs and contacts_per_org must be >= 0';
    END IF;
    IF v_mpc IS NULL OR v_mpc < 1 THEN
        RAISE EXCEPTION 'crm_generate: messages_per_conversation must be >= 1';
    END IF;
    IF seed IS NULL OR seed < -1 OR seed > 1 THEN
        RAISE EXCEPTION 'crm_generate: seed must be in [-1, 1] (setseed)';
    END IF;

    PERFORM setseed(seed);

    SELECT coalesce(max(id), 0) INTO v_org0     FROM organizations;
    SELECT coalesce(max(id), 0) INTO v_user0    FROM users;
    SELECT coalesce(max(id), 0) INTO v_contact0 FROM contacts;
    SELECT coalesce(max(id), 0) INTO v_conv0    FROM conversations;
    SELECT coalesce(max(id), 0) INTO v_msg0     FROM messages;
    SELECT coalesce(max(id), 0) INTO v_order0   FROM orders;
    SELECT coalesce(max(id), 0) INTO v_item0    FROM order_items;

    ---------------------------------------------------------------- tenants
    INSERT INTO organizations (name, country, plan, created_at)
    SELECT v_orgword[1 + floor(random() * array_length(v_orgword, 1))::int] || ' '
               || v_orgkind[1 + floor(random() * array_length(v_orgkind, 1))::int] || ' ' || g,
           v_country[1 + (g - 1) % array_length(v_country, 1)],
           (ARRAY['starter','growth','scale'])[1 + floor(random() * 3)::int],
           v_anchor - interval '10 years' - random() * interval '1 year'
    FROM generate_series(1, orgs) AS g
    ORDER BY g;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('organizations', v_n);

    -- Per-org scratch data: arrays of the org's users, labels and segments.
    IF to_regclass('pg_temp._crm_gen_orgs') IS NOT NULL THEN
        DROP TABLE pg_temp._crm_gen_orgs;
    END IF;
    CREATE TEMP TABLE _crm_gen_orgs (
        org_id     bigint PRIMARY KEY,
        name       text,
        cc         text,
        currency   text,
        created_at timestamptz,
        nusers     int,
        uids       bigint[],
        lids       bigint[],
        sids       bigint[]
    );
    INSERT INTO _crm_gen_orgs (org_id, name, cc, currency, created_at, nusers)
    SELECT o.id, o.name,
           v_cc[array_position(v_country, o.country)],
           v_currency[array_position(v_country, o.country)],
           o.created_at,
           4 + floor(random() * 3)::int
    FROM organizations o
    WHERE o.id > v_org0
    ORDER BY o.id;

    ---------------------------------------------------------------- users
    INSERT INTO users (org_id, email, full_name, phone, password_hash, meta_user_id, created_at)
    SELECT x.org_id,
           lower(translate(x.fn || '.' || x.ln, v_accents, v_plain)) || x.n
               || '@org' || x.org_id || '.example.com',
           x.fn || ' ' || x.ln,
           '+' || x.cc || '9' || lpad((floor(x.r_phone * 1e8))::bigint::text, 8, '0'),
           '$2b$12$' || md5(x.r_phone::text) || substr(md5(x.r_meta::text), 1, 21),
           CASE WHEN x.r_meta < 0.4 THEN (1000000000000000 + x.org_id * 100 + x.n)::text END,
           x.created_at + random() * (v_anchor - interval '3 years' - x.created_at)
    FROM (SELECT o.org_id, o.cc, o.created_at, n,
                 v_first[1 + floor(random() * array_length(v_first, 1))::int] AS fn,
                 v_last[1 + floor(random() * array_length(v_last, 1))::int]   AS ln,
                 random() AS r_phone, random() AS r_meta
          FROM _crm_gen_orgs o, generate_series(1, o.nusers) AS n
          ORDER BY o.org_id, n
          OFFSET 0) AS x
    ORDER BY x.org_id, x.n;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('users', v_n);

    UPDATE _crm_gen_orgs o
    SET uids = u.uids
    FROM (SELECT org_id, array_agg(id ORDER BY id) AS uids
          FROM users WHERE id > v_user0 GROUP BY org_id) AS u
    WHERE u.org_id = o.org_id;

    INSERT INTO team_memberships (org_id, user_id, role, created_at)
    SELECT u.org_id, u.id,
           CASE u.rn WHEN 1 THEN 'admin' WHEN 2 THEN 'manager' ELSE 'agent' END,
           u.created_at
    FROM (SELECT id, org_id, created_at,
                 row_number() OVER (PARTITION BY org_id ORDER BY id) AS rn
          FROM users WHERE id > v_user0) AS u
    ORDER BY u.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('team_memberships', v_n);

    ---------------------------------------------------------------- labels, segments
    INSERT INTO labels (org_id, name, color)
    SELECT o.org_id, v_label[i], v_lcolor[i]
    FROM _crm_gen_orgs o, generate_series(1, array_length(v_label, 1)) AS i
    ORDER BY o.org_id, i;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('labels', v_n);

    INSERT INTO segments (org_id, name, definition)
    SELECT o.org_id, v_segment[i], v_segdef[i]
    FROM _crm_gen_orgs o, generate_series(1, array_length(v_segment, 1)) AS i
    ORDER BY o.org_id, i;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('segments', v_n);

    UPDATE _crm_gen_orgs o
    SET lids = l.lids
    FROM (SELECT org_id, array_agg(id ORDER BY id) AS lids
          FROM labels WHERE org_id IN (SELECT org_id FROM _crm_gen_orgs) GROUP BY org_id) AS l
    WHERE l.org_id = o.org_id;
    UPDATE _crm_gen_orgs o
    SET sids = s.sids
    FROM (SELECT org_id, array_agg(id ORDER BY id) AS sids
          FROM segments WHERE org_id IN (SELECT org_id FROM _crm_gen_orgs) GROUP BY org_id) AS s
    WHERE s.org_id = o.org_id;
    ANALYZE _crm_gen_orgs;

    ---------------------------------------------------------------- contacts
    -- Phones: '+' || country code || a digit 2-9 || the contact's ordinal
    -- (zero-padded to a total of 10-12 digits), so they are unique across
    -- calls as long as ids are.
    INSERT INTO contacts (org_id, phone_e164, email, name, lifecycle_stage, created_at)
    SELECT x.org_id,
           '+' || x.cc || (2 + floor(x.r_lead * 8))::int
               || lpad(x.ord::text,
                       greatest(x.len - length(x.cc) - 1, length(x.ord::text)), '0'),
           CASE WHEN x.r_email < 0.85 THEN
               CASE WHEN x.r_case < 0.3
                    THEN translate(x.fn || '.' || x.ln, v_accents, v_plain) || x.ord
                             || '@' || initcap(x.dom)
                    ELSE lower(translate(x.fn || '.' || x.ln, v_accents, v_plain)) || x.ord
                             || '@' || x.dom
               END
           END,
           x.fn || ' ' || x.ln,
           v_stage[x.nstage],
           x.created_at
    FROM (SELECT o.org_id, o.cc, k,
                 v_contact0 + (row_number() OVER (ORDER BY o.org_id, k)) AS ord,
                 10 + floor(random() * 3)::int AS len,
                 random() AS r_lead, random() AS r_email, random() AS r_case,
                 v_first[1 + floor(random() * array_length(v_first, 1))::int]   AS fn,
                 v_last[1 + floor(random() * array_length(v_last, 1))::int]     AS ln,
                 v_domain[1 + floor(random() * array_length(v_domain, 1))::int] AS dom,
                 1 + floor(random() * array_length(v_stage, 1))::int            AS nstage,
                 v_anchor - random() * interval '3 years'                       AS created_at
          FROM _crm_gen_orgs o, generate_series(1, contacts_per_org) AS k
          ORDER BY o.org_id, k
          OFFSET 0) AS x
    ORDER BY x.org_id, x.k;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('contacts', v_n);
    ANALYZE contacts;

    -- lifecycle: one event per stage reached, in order, ending at the contact's stage
    INSERT INTO lifecycle_events (org_id, contact_id, stage, at)
    SELECT c.org_id, c.id, v_stage[s],
           c.created_at + (v_anchor - c.created_at) * ((s - 1 + random()) / 4.0)
    FROM contacts c,
         generate_series(1, coalesce(array_position(v_stage, c.lifecycle_stage), 1)) AS s
    WHERE c.id > v_contact0
    ORDER BY c.id, s;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('lifecycle_events', v_n);

    -- 0-3 distinct labels: k consecutive labels from a random offset
    INSERT INTO contact_labels (org_id, contact_id, label_id, created_at)
    SELECT x.org_id, x.id,
           o.lids[1 + (x.off + j) % array_length(o.lids, 1)],
           x.created_at + random() * (v_anchor - x.created_at)
    FROM (SELECT id, org_id, created_at,
                 floor(random() * 4)::int AS k, floor(random() * 5)::int AS off
          FROM contacts WHERE id > v_contact0 ORDER BY id OFFSET 0) AS x
    JOIN _crm_gen_orgs o USING (org_id),
         generate_series(0, x.k - 1) AS j
    ORDER BY x.id, j;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('contact_labels', v_n);

    -- 0-2 distinct segments
    INSERT INTO segment_members (org_id, segment_id, contact_id, added_at)
    SELECT x.org_id,
           o.sids[1 + (x.off + j) % array_length(o.sids, 1)],
           x.id,
           x.created_at + random() * (v_anchor - x.created_at)
    FROM (SELECT id, org_id, created_at,
                 floor(random() * 3)::int AS k, floor(random() * 3)::int AS off
          FROM contacts WHERE id > v_contact0 ORDER BY id OFFSET 0) AS x
    JOIN _crm_gen_orgs o USING (org_id),
         generate_series(0, x.k - 1) AS j
    ORDER BY x.id, j;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('segment_members', v_n);

    ---------------------------------------------------------------- conversations, messages, media
    INSERT INTO conversations (org_id, contact_id, assigned_user_id, status, started_at)
    SELECT x.org_id, x.id,
           o.uids[1 + floor(random() * array_length(o.uids, 1))::int],
           CASE WHEN r < 0.7 THEN 'closed' WHEN r < 0.9 THEN 'open' ELSE 'pending' END,
           x.created_at + random() * (v_anchor - x.created_at)
    FROM (SELECT id, org_id, created_at, 1 + floor(random() * 3)::int AS n
          FROM contacts WHERE id > v_contact0 ORDER BY id OFFSET 0) AS x
    JOIN _crm_gen_orgs o USING (org_id),
         generate_series(1, x.n) AS j,
         LATERAL (SELECT random() + 0 * j AS r) AS rr
    ORDER BY x.id, j;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('conversations', v_n);
    ANALYZE conversations;

    -- Odd messages come from the contact (sender NULL), even ones from an
    -- agent (usually the assignee). Count per conversation: v_mpc +-25%.
    INSERT INTO messages (org_id, conversation_id, sender_user_id, body, sent_at)
    SELECT x.org_id, x.id,
           CASE WHEN i % 2 = 1 THEN NULL
                WHEN x.assigned_user_id IS NOT NULL AND random() < 0.9 THEN x.assigned_user_id
                ELSE o.uids[1 + floor(random() * array_length(o.uids, 1))::int]
           END,
           CASE WHEN i % 2 = 1
                THEN v_cbody[1 + floor(random() * array_length(v_cbody, 1))::int]
                ELSE v_abody[1 + floor(random() * array_length(v_abody, 1))::int]
           END,
           least(v_anchor, x.started_at + (i - 1) * interval '4 minutes'
                                        + random() * interval '3 minutes')
    FROM (SELECT id, org_id, assigned_user_id, started_at,
                 greatest(1, v_mpc + round((random() - 0.5) * v_mpc / 2.0)::int) AS n
          FROM conversations WHERE id > v_conv0 ORDER BY id OFFSET 0) AS x
    JOIN _crm_gen_orgs o USING (org_id),
         generate_series(1, x.n) AS i;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('messages', v_n);

    INSERT INTO media (org_id, message_id, kind, storage_key, mime_type, bytes)
    SELECT x.org_id, x.id, v_kind[x.k],
           'org/' || x.org_id || '/media/' || md5(seed::text || ':' || x.id)::uuid,
           v_mime[x.k],
           CASE x.k WHEN 1 THEN 40000 + floor(random() * 3000000)::int
                    WHEN 2 THEN 8000 + floor(random() * 1500000)::int
                    ELSE 20000 + floor(random() * 8000000)::int
           END
    FROM (SELECT id, org_id, 1 + floor(random() * 3)::int AS k, random() AS r
          FROM messages WHERE id > v_msg0 ORDER BY id OFFSET 0) AS x
    WHERE x.r < 1.0 / 6;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('media', v_n);

    ---------------------------------------------------------------- commerce
    INSERT INTO orders (org_id, contact_id, total, currency, placed_at)
    SELECT x.org_id, x.id, 0, o.currency,
           x.created_at + random() * (v_anchor - x.created_at)
    FROM (SELECT id, org_id, created_at, floor(random() * 3)::int AS n
          FROM contacts WHERE id > v_contact0 ORDER BY id OFFSET 0) AS x
    JOIN _crm_gen_orgs o USING (org_id),
         generate_series(1, x.n) AS j
    ORDER BY x.id, j;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('orders', v_n);

    INSERT INTO order_items (org_id, order_id, sku, quantity, unit_price)
    SELECT x.org_id, x.id,
           'SKU-' || lpad((1 + floor(random() * 500))::int::text, 4, '0'),
           1 + floor(random() * 5)::int,
           round((2.5 + random() * 247.5)::numeric, 2)
    FROM (SELECT id, org_id, 1 + floor(random() * 3)::int AS n
          FROM orders WHERE id > v_order0 ORDER BY id OFFSET 0) AS x,
         generate_series(1, x.n) AS j
    ORDER BY x.id, j;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('order_items', v_n);

    UPDATE orders o
    SET total = t.total
    FROM (SELECT order_id, sum(quantity * unit_price) AS total
          FROM order_items WHERE id > v_item0 GROUP BY order_id) AS t
    WHERE o.id = t.order_id;

    INSERT INTO reorder_cycles (org_id, contact_id, interval_days, next_at)
    SELECT x.org_id, x.id, x.days, v_anchor + random() * x.days * interval '1 day'
    FROM (SELECT id, org_id, random() AS r,
                 (ARRAY[7, 14, 30, 60, 90])[1 + floor(random() * 5)::int] AS days
          FROM contacts WHERE id > v_contact0 ORDER BY id OFFSET 0) AS x
    WHERE x.r < 0.4
    ORDER BY x.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('reorder_cycles', v_n);

    ---------------------------------------------------------------- AI
    INSERT INTO ai_logs (org_id, contact_id, conversation_id, model, prompt, response, at)
    SELECT x.org_id, x.id,
           CASE WHEN random() < 0.5
                THEN x.cids[1 + floor(random() * array_length(x.cids, 1))::int] END,
           (ARRAY['gpt-4o-mini','claude-3-haiku','llama-3-8b'])[1 + floor(random() * 3)::int],
           'Summarise the WhatsApp conversation with ' || x.name
               || coalesce(' (' || x.phone_e164 || ')', '') || ' and suggest a reply.',
           'Customer ' || x.name || ' asks about a reorder; suggest offering the usual items.',
           x.created_at + random() * (v_anchor - x.created_at)
    FROM (SELECT c.id, c.org_id, c.name, c.phone_e164, c.created_at, cv.cids,
                 floor(random() * 4)::int AS n
          FROM contacts c
          JOIN (SELECT contact_id, array_agg(id ORDER BY id) AS cids
                FROM conversations WHERE id > v_conv0 GROUP BY contact_id) AS cv
            ON cv.contact_id = c.id
          WHERE c.id > v_contact0 ORDER BY c.id OFFSET 0) AS x,
         generate_series(1, x.n) AS j
    ORDER BY x.id, j;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('ai_logs', v_n);

    INSERT INTO ai_prompt_cache (org_id, contact_id, prompt, response, created_at)
    SELECT x.org_id, x.id,
           'Draft a reorder reminder for ' || x.name || ', stage ' || coalesce(x.lifecycle_stage, '?'),
           'Hi ' || split_part(x.name, ' ', 1) || ', it is time to restock! Reply YES to reorder.',
           x.created_at + random() * (v_anchor - x.created_at)
    FROM (SELECT id, org_id, name, lifecycle_stage, created_at, floor(random() * 3)::int AS n
          FROM contacts WHERE id > v_contact0 ORDER BY id OFFSET 0) AS x,
         generate_series(1, x.n) AS j
    ORDER BY x.id, j;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('ai_prompt_cache', v_n);

    ---------------------------------------------------------------- channels, audit, billing
    -- Users with a Meta id connect 1-3 providers starting with 'meta'
    -- (meta/instagram rows carry that id); ~25% of the others connect
    -- telegram (and sometimes meta, with an id of its own).
    INSERT INTO channel_connections (org_id, user_id, provider, meta_user_id, access_token, created_at)
    SELECT x.org_id, x.id, p.provider,
           CASE WHEN p.provider <> 'telegram'
                THEN coalesce(x.meta_user_id, (2000000000000000 + x.id)::text) END,
           CASE WHEN p.provider = 'telegram'
                THEN (100000000 + x.id)::text || ':' || md5(seed::text || 'tg' || x.id || p.provider)
                ELSE 'EAAG' || md5(seed::text || 'fb' || x.id || p.provider)
                         || md5(p.provider || x.id || seed::text)
           END,
           x.created_at + random() * (v_anchor - x.created_at)
    FROM (SELECT id, org_id, meta_user_id, created_at,
                 CASE WHEN meta_user_id IS NOT NULL THEN 1 + floor(random() * 3)::int
                      WHEN random() < 0.25 THEN 1 + floor(random() * 2)::int
                      ELSE 0 END AS n,
                 CASE WHEN meta_user_id IS NOT NULL THEN 0 ELSE 2 END AS off
          FROM users WHERE id > v_user0 ORDER BY id OFFSET 0) AS x,
         generate_series(0, x.n - 1) AS j,
         LATERAL (SELECT v_provider[1 + (x.off + j) % 3] AS provider) AS p
    ORDER BY x.id, j;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('channel_connections', v_n);

    INSERT INTO audit_logs (org_id, actor_user_id, action, at, ip_address, details)
    SELECT x.org_id, x.actor, x.action, x.at, x.ip,
           coalesce(u.email, 'system') || ' ' || x.action || ' from ' || host(x.ip)
    FROM (SELECT a.org_id, a.action, a.at, a.ip,
                 CASE WHEN a.r_sys < 0.1 THEN NULL
                      ELSE a.uids[1 + floor(a.r_user * array_length(a.uids, 1))::int] END AS actor
          FROM (SELECT o.org_id, o.uids, j,
                       v_action[1 + floor(random() * array_length(v_action, 1))::int] AS action,
                       v_anchor - random() * interval '3 years' AS at,
                       ((11 + floor(random() * 180))::int || '.' || floor(random() * 256)::int || '.'
                         || floor(random() * 256)::int || '.' || (1 + floor(random() * 254))::int)::inet AS ip,
                       random() AS r_sys, random() AS r_user
                FROM (SELECT org_id, uids, 15 + floor(random() * 11)::int AS n
                      FROM _crm_gen_orgs ORDER BY org_id OFFSET 0) AS o,
                     generate_series(1, o.n) AS j
                ORDER BY o.org_id, j
                OFFSET 0) AS a) AS x
    LEFT JOIN users u ON u.id = x.actor
    ORDER BY x.org_id, x.at;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('audit_logs', v_n);

    -- Two invoices a month over the last 10 years, billed to the org admin.
    INSERT INTO invoices (org_id, issued_at, billing_name, billing_email, amount)
    SELECT o.org_id,
           v_anchor - m * interval '1 month' - k * interval '15 days' - random() * interval '1 day',
           CASE WHEN (o.org_id % 2) = 0 THEN u.full_name ELSE o.name END,
           u.email,
           round((29 + random() * 270)::numeric, 2)
    FROM _crm_gen_orgs o
    JOIN users u ON u.id = o.uids[1],
         generate_series(119, 0, -1) AS m,
         generate_series(1, 0, -1) AS k
    ORDER BY o.org_id, m DESC, k DESC;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('invoices', v_n);

    DROP TABLE pg_temp._crm_gen_orgs;

    ANALYZE organizations, users, team_memberships, contacts, labels, contact_labels,
            segments, segment_members, lifecycle_events, conversations, messages, media,
            orders, order_items, reorder_cycles, ai_logs, ai_prompt_cache,
            channel_connections, audit_logs, invoices;

    RETURN v_counts;
END
$fn$;

COMMENT ON FUNCTION public.crm_generate(int, int, int, double precision) IS
    'Fill the reference CRM with synthetic tenants; returns rows inserted per table (jsonb).';
