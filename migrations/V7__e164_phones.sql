-- Customer phone numbers in E.164 (core::customer::normal_phone): "+86 139…", "0086139…" and
-- "139…" are one person. Earlier versions stored digits only, with a +86 dropped.
UPDATE customers SET phone = CASE
        WHEN phone ~ '^1[0-9]{10}$' THEN '+86' || phone
        WHEN phone ~ '^861[0-9]{10}$' THEN '+' || phone
        WHEN phone ~ '^00[0-9]{8,}$' THEN '+' || substr(phone, 3)
        WHEN phone ~ '^0[0-9]{9,11}$' THEN '+86' || substr(phone, 2)
        ELSE phone
    END
WHERE phone ~ '^[0-9]+$';
