/*
 * nicknames.c - the built-in English nickname table and given-name canonicalization.
 *
 * The table maps common nicknames to the given name they stand for, so that "Bill Smith" and
 * "William Smith" can meet at the comparison level EXACT instead of DIFFERENT. It holds only
 * nicknames with one dominant meaning: "al", "alex", "chris", "sam", "pat", "jo", "terry",
 * "toni", "val", "gene" and their like stand for two or more names (often of both sexes) and
 * are left out. Keys are sorted in strcmp() order for binary search; the unit tests check the
 * order, uniqueness and that no canonical name is itself a key (canonicalization is
 * idempotent). Callers: the identity feed and PDQ (later), the tests.
 */
#include "mpi_int.h"

#include <string.h>

const struct hie_mpi__nickname hie_mpi__nicknames[] = {
    {"abbie", "abigail"},
    {"abby", "abigail"},
    {"abe", "abraham"},
    {"alf", "alfred"},
    {"alfie", "alfred"},
    {"andy", "andrew"},
    {"angie", "angela"},
    {"archie", "archibald"},
    {"art", "arthur"},
    {"artie", "arthur"},
    {"babs", "barbara"},
    {"barb", "barbara"},
    {"barbie", "barbara"},
    {"bart", "bartholomew"},
    {"bea", "beatrice"},
    {"becca", "rebecca"},
    {"becki", "rebecca"},
    {"becky", "rebecca"},
    {"ben", "benjamin"},
    {"benji", "benjamin"},
    {"benny", "benjamin"},
    {"bess", "elizabeth"},
    {"bessie", "elizabeth"},
    {"beth", "elizabeth"},
    {"betsy", "elizabeth"},
    {"betty", "elizabeth"},
    {"bill", "william"},
    {"billy", "william"},
    {"bob", "robert"},
    {"bobby", "robert"},
    {"cassie", "cassandra"},
    {"cathy", "catherine"},
    {"chas", "charles"},
    {"chaz", "charles"},
    {"chuck", "charles"},
    {"cindy", "cynthia"},
    {"cliff", "clifford"},
    {"connie", "constance"},
    {"dave", "david"},
    {"davey", "david"},
    {"davy", "david"},
    {"deb", "deborah"},
    {"debbie", "deborah"},
    {"debby", "deborah"},
    {"denny", "dennis"},
    {"des", "desmond"},
    {"dick", "richard"},
    {"dickie", "richard"},
    {"dolly", "dorothy"},
    {"dom", "dominic"},
    {"don", "donald"},
    {"donnie", "donald"},
    {"dot", "dorothy"},
    {"dottie", "dorothy"},
    {"doug", "douglas"},
    {"drew", "andrew"},
    {"ernie", "ernest"},
    {"flo", "florence"},
    {"flossie", "florence"},
    {"fred", "frederick"},
    {"geoff", "geoffrey"},
    {"gertie", "gertrude"},
    {"gil", "gilbert"},
    {"ginny", "virginia"},
    {"greg", "gregory"},
    {"hank", "henry"},
    {"hattie", "harriet"},
    {"herb", "herbert"},
    {"iggy", "ignatius"},
    {"jack", "john"},
    {"jake", "jacob"},
    {"jed", "jedediah"},
    {"jeff", "jeffrey"},
    {"jen", "jennifer"},
    {"jenn", "jennifer"},
    {"jenny", "jennifer"},
    {"jim", "james"},
    {"jimmie", "james"},
    {"jimmy", "james"},
    {"joe", "joseph"},
    {"joey", "joseph"},
    {"johnny", "john"},
    {"josh", "joshua"},
    {"josie", "josephine"},
    {"judy", "judith"},
    {"kate", "katherine"},
    {"kathy", "katherine"},
    {"katie", "katherine"},
    {"ken", "kenneth"},
    {"kenny", "kenneth"},
    {"kitty", "katherine"},
    {"larry", "lawrence"},
    {"len", "leonard"},
    {"lenny", "leonard"},
    {"libby", "elizabeth"},
    {"liz", "elizabeth"},
    {"liza", "elizabeth"},
    {"lizzie", "elizabeth"},
    {"lizzy", "elizabeth"},
    {"lottie", "charlotte"},
    {"madge", "margaret"},
    {"maggie", "margaret"},
    {"mamie", "mary"},
    {"mandy", "amanda"},
    {"marge", "margaret"},
    {"margie", "margaret"},
    {"matt", "matthew"},
    {"matty", "matthew"},
    {"meg", "margaret"},
    {"mick", "michael"},
    {"mickey", "michael"},
    {"mike", "michael"},
    {"mikey", "michael"},
    {"missy", "melissa"},
    {"mitch", "mitchell"},
    {"molly", "mary"},
    {"monty", "montgomery"},
    {"mort", "mortimer"},
    {"ned", "edward"},
    {"nick", "nicholas"},
    {"ollie", "oliver"},
    {"ozzie", "oswald"},
    {"paddy", "patrick"},
    {"pam", "pamela"},
    {"peg", "margaret"},
    {"peggy", "margaret"},
    {"penny", "penelope"},
    {"percy", "percival"},
    {"pete", "peter"},
    {"phil", "philip"},
    {"polly", "mary"},
    {"pru", "prudence"},
    {"prue", "prudence"},
    {"reg", "reginald"},
    {"reggie", "reginald"},
    {"rich", "richard"},
    {"richie", "richard"},
    {"rick", "richard"},
    {"ricky", "richard"},
    {"rob", "robert"},
    {"robbie", "robert"},
    {"robby", "robert"},
    {"ron", "ronald"},
    {"russ", "russell"},
    {"sadie", "sarah"},
    {"sally", "sarah"},
    {"seb", "sebastian"},
    {"sol", "solomon"},
    {"stan", "stanley"},
    {"steph", "stephanie"},
    {"steve", "stephen"},
    {"sue", "susan"},
    {"susie", "susan"},
    {"suzie", "susan"},
    {"suzy", "susan"},
    {"tess", "theresa"},
    {"tessie", "theresa"},
    {"thad", "thaddeus"},
    {"theo", "theodore"},
    {"tillie", "matilda"},
    {"tilly", "matilda"},
    {"tim", "timothy"},
    {"timmy", "timothy"},
    {"toby", "tobias"},
    {"tom", "thomas"},
    {"tommy", "thomas"},
    {"tony", "anthony"},
    {"topher", "christopher"},
    {"tricia", "patricia"},
    {"trish", "patricia"},
    {"trisha", "patricia"},
    {"trixie", "beatrice"},
    {"trudy", "gertrude"},
    {"vickie", "victoria"},
    {"vicky", "victoria"},
    {"vince", "vincent"},
    {"vinny", "vincent"},
    {"wally", "walter"},
    {"walt", "walter"},
    {"wilf", "wilfred"},
    {"will", "william"},
    {"willie", "william"},
    {"willy", "william"},
    {"winnie", "winifred"},
    {"zach", "zachary"},
    {"zack", "zachary"},
    {"zak", "zachary"},
    {"zeke", "ezekiel"},
};
const size_t hie_mpi__nicknames_count = HIE_ARRAY_LEN(hie_mpi__nicknames);

/* strcmp() of word (len bytes, no NUL) against the NUL-terminated key. */
static int
nickname_cmp(const char *word, size_t len, const char *key)
{
    size_t key_len = strlen(key);
    int c = memcmp(word, key, len < key_len ? len : key_len);
    if (c != 0) {
        return c;
    }
    return len < key_len ? -1 : (len > key_len ? 1 : 0);
}

const char *
hie_mpi__nickname_find(const char *word, size_t word_len)
{
    size_t lo = 0;
    size_t hi = hie_mpi__nicknames_count;

    HIE_ASSERT(word != NULL);
    while (lo < hi) { /* bounded: the range halves each turn */
        size_t mid = lo + (hi - lo) / 2;
        int c = nickname_cmp(word, word_len, hie_mpi__nicknames[mid].nickname);
        if (c == 0) {
            return hie_mpi__nicknames[mid].canonical;
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

int
hie_mpi_given_canonical(const char *norm, char *out, size_t out_bytes)
{
    char result[HIE_MPI_NORM_BUF_BYTES];
    size_t len = 0;

    HIE_ASSERT(norm != NULL);
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(out_bytes >= 1);
    size_t norm_len = strlen(norm);
    HIE_ASSERT(norm_len <= HIE_MPI_NORM_BYTES_MAX);
    uintptr_t out_at = (uintptr_t)out;
    uintptr_t norm_at = (uintptr_t)norm;
    HIE_ASSERT(out_at + out_bytes <= norm_at || norm_at + norm_len + 1 <= out_at); /* apart */
    out[0] = '\0';
    size_t len_max = out_bytes - 1 < HIE_MPI_NORM_BYTES_MAX ? out_bytes - 1
                                                             : HIE_MPI_NORM_BYTES_MAX;
    for (size_t pos = 0; pos < norm_len;) {
        size_t end = pos;
        while (end < norm_len && norm[end] != ' ') {
            end++;
        }
        const char *canonical = hie_mpi__nickname_find(norm + pos, end - pos);
        const char *word = canonical != NULL ? canonical : norm + pos;
        size_t word_len = canonical != NULL ? strlen(canonical) : end - pos;
        /* Spaces are copied as they are: a normalized name has single ones. */
        size_t sep = end < norm_len ? 1u : 0u;
        if (word_len + sep > len_max - len) {
            return HIE_ELIMIT;
        }
        memcpy(result + len, word, word_len);
        len += word_len;
        if (sep != 0) {
            result[len++] = ' ';
        }
        pos = end + 1;
    }
    result[len] = '\0';
    memcpy(out, result, len + 1);
    return 0;
}
