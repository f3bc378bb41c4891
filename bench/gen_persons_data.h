/*
 * gen_persons_data.h - the lookup tables of bench/gen_persons.c: given names, family names,
 * street names and suffixes, suburbs with their states, property names, nicknames, keyboard
 * neighbours and OCR confusions.
 *
 * Everything here is a list of common words written for this generator: no record of any real
 * person is involved, and the postcodes are not the real ones (gen_persons.c derives one per
 * suburb from the state's range, so a suburb always has the same postcode). Values are
 * lowercase ASCII letters and spaces, like the FEBRL files, and never contain a comma.
 *
 * The name, street and suburb tables are in rough order of frequency, most common first:
 * gen_persons.c draws from them with a Zipf-Mandelbrot skew by rank, so the first entries are
 * common and the tail is rare. Reordering a table changes the generated data.
 *
 * Included only by gen_persons.c (the tables are static; every one of them is used there).
 */
#ifndef HIE_BENCH_GEN_PERSONS_DATA_H
#define HIE_BENCH_GEN_PERSONS_DATA_H

enum gen_state {
    GEN_NSW,
    GEN_VIC,
    GEN_QLD,
    GEN_SA,
    GEN_WA,
    GEN_TAS,
    GEN_ACT,
    GEN_NT,
    GEN_STATE_COUNT
};

/* Lowercase state codes, as in the FEBRL files. */
static const char *const gen_state_codes[GEN_STATE_COUNT] = {
    "nsw", "vic", "qld", "sa", "wa", "tas", "act", "nt",
};

/* The postcode range a state's suburbs draw from: first code and number of codes. */
static const struct gen_postcode_range {
    unsigned first;
    unsigned count;
} gen_state_postcodes[GEN_STATE_COUNT] = {
    {2000, 600}, {3000, 1000}, {4000, 1000}, {5000, 800},
    {6000, 800}, {7000, 800}, {2600, 19}, {800, 100},
};

/* 345 male given names, most common first. */
static const char *const gen_male_names[] = {
    "james", "john", "robert", "michael", "william", "david", "peter", "richard", "thomas",
    "christopher", "daniel", "matthew", "andrew", "mark", "paul", "steven", "anthony", "joshua",
    "benjamin", "jack", "kenneth", "kevin", "brian", "george", "timothy", "ronald", "edward",
    "jason", "jeffrey", "ryan", "jacob", "gary", "nicholas", "eric", "jonathan", "stephen",
    "lawrence", "justin", "scott", "brandon", "samuel", "gregory", "alexander", "frank", "patrick",
    "raymond", "dennis", "jerry", "tyler", "aaron", "joseph", "adam", "nathan", "henry", "douglas",
    "zachary", "charles", "kyle", "ethan", "walter", "noah", "jeremy", "christian", "keith",
    "roger", "terry", "gerald", "harold", "sean", "austin", "carl", "arthur", "dylan", "jesse",
    "jordan", "bryan", "bruce", "gabriel", "logan", "albert", "alan", "wayne", "elijah", "randy",
    "roy", "vincent", "ralph", "eugene", "russell", "mason", "philip", "louis", "liam", "oliver",
    "lachlan", "harrison", "cooper", "riley", "hamish", "angus", "callum", "declan", "fergus",
    "bradley", "craig", "darren", "glenn", "graham", "grant", "ian", "lloyd", "malcolm", "murray",
    "neil", "nigel", "owen", "rhys", "ross", "shane", "stuart", "trevor", "warren", "barry",
    "clive", "colin", "desmond", "dominic", "duncan", "edwin", "ernest", "francis", "frederick",
    "geoffrey", "gordon", "herbert", "howard", "hugh", "kieran", "leonard", "leslie", "lionel",
    "martin", "maxwell", "mitchell", "morris", "norman", "oscar", "reginald", "rodney", "rowan",
    "sidney", "stanley", "tobias", "victor", "wallace", "wesley", "xavier", "archie", "alfred",
    "donald", "joel", "luke", "blake", "brett", "brendan", "cameron", "connor", "corey", "dean",
    "dale", "damien", "dion", "jarrod", "kane", "kurt", "lincoln", "marcus", "nathaniel", "phillip",
    "reece", "robin", "rohan", "sebastian", "simon", "spencer", "travis", "troy", "tristan",
    "vaughan", "zane", "aidan", "ashton", "bailey", "beau", "caleb", "darcy", "elliot", "finn",
    "flynn", "hayden", "hudson", "hunter", "isaac", "jayden", "jasper", "jett", "kai", "levi",
    "lucas", "quinn", "ryder", "seth", "mohammed", "ahmed", "ali", "omar", "hassan", "ibrahim",
    "yusuf", "khalid", "tariq", "bilal", "minh", "duc", "hung", "tuan", "quang", "wei", "jun",
    "hao", "jian", "ming", "raj", "arjun", "rahul", "vikram", "sanjay", "ravi", "amit", "anil",
    "sunil", "deepak", "luca", "marco", "giuseppe", "antonio", "giovanni", "nikolaos", "georgios",
    "dimitrios", "konstantinos", "ivan", "sergei", "stefan", "lukas", "matteo", "diego", "carlos",
    "miguel", "jose", "juan", "hiroshi", "kenji", "takashi", "sung", "jin", "hyun", "pedro",
    "rafael", "andre", "tomas", "allan", "alistair", "basil", "bernard", "cecil", "clarence",
    "claude", "clement", "cornelius", "dudley", "everett", "gilbert", "harvey", "horace", "ivor",
    "jeremiah", "lance", "laurence", "lewis", "melvin", "mervyn", "neville", "noel", "rex", "royce",
    "rupert", "silas", "sylvester", "terence", "vernon", "wilbur", "winston", "ambrose", "barnaby",
    "benedict", "bryce", "dwayne", "ellis", "emmett", "felix", "floyd", "gareth", "garry", "gavin",
    "harry", "jonah", "kelvin", "leon", "lyle", "marshall", "milton", "morgan", "nelson", "preston",
    "quentin", "reuben", "roland", "tyrone", "wade", "archibald", "bartholomew", "clifford",
    "cyril", "montgomery", "oswald", "percival", "theodore", "wilfred", "ezekiel", "abraham",
    "ignatius", "mortimer", "solomon", "thaddeus",
};

/* 300 female given names, most common first. */
static const char *const gen_female_names[] = {
    "mary", "patricia", "jennifer", "linda", "elizabeth", "barbara", "susan", "jessica", "sarah",
    "karen", "lisa", "nancy", "margaret", "sandra", "ashley", "kimberly", "emily", "donna",
    "michelle", "carol", "amanda", "dorothy", "melissa", "deborah", "stephanie", "rebecca",
    "sharon", "laura", "cynthia", "kathleen", "amy", "angela", "shirley", "anna", "brenda",
    "pamela", "emma", "nicole", "helen", "samantha", "katherine", "christine", "debra", "rachel",
    "carolyn", "janet", "catherine", "maria", "heather", "diane", "ruth", "julie", "olivia",
    "joyce", "virginia", "victoria", "kelly", "lauren", "christina", "joan", "evelyn", "judith",
    "megan", "andrea", "cheryl", "hannah", "jacqueline", "martha", "gloria", "teresa", "ann",
    "sara", "madison", "frances", "kathryn", "janice", "jean", "abigail", "alice", "denise",
    "amber", "doris", "marilyn", "danielle", "beverly", "isabella", "theresa", "diana", "natalie",
    "charlotte", "marie", "kayla", "alexis", "lori", "chloe", "zoe", "mia", "ruby", "isla",
    "matilda", "ava", "harper", "ella", "sienna", "ivy", "willow", "georgia", "lily", "jasmine",
    "holly", "jade", "tahlia", "bree", "kylie", "leanne", "tracey", "narelle", "joanne", "belinda",
    "bronwyn", "fiona", "gillian", "kerry", "lorraine", "maureen", "noeline", "robyn", "sheryl",
    "vanessa", "wendy", "yvonne", "prudence", "penelope", "florence", "gertrude", "harriet",
    "winifred", "constance", "beatrice", "agnes", "edith", "enid", "gwendolyn", "hazel", "ida",
    "irene", "iris", "joy", "june", "lois", "mabel", "mavis", "muriel", "myrtle", "nellie", "olive",
    "pearl", "phyllis", "rita", "rose", "sylvia", "thelma", "vera", "violet", "hilda", "ethel",
    "elsie", "doreen", "dulcie", "beryl", "priya", "anjali", "sunita", "mei", "ling", "xiu", "yan",
    "linh", "mai", "hoa", "fatima", "aisha", "layla", "zara", "sofia", "giulia", "francesca",
    "eleni", "anastasia", "katarina", "alexandra", "caroline", "cassandra", "claire", "courtney",
    "erin", "hayley", "jodie", "kirsty", "krystal", "lucy", "melanie", "monique", "natasha",
    "rachael", "renee", "simone", "tamara", "tania", "tanya", "alana", "alison", "amelia",
    "annette", "audrey", "bethany", "brooke", "carly", "chelsea", "deanne", "elise", "eloise",
    "felicity", "gemma", "grace", "imogen", "isabel", "jane", "jenna", "josephine", "karina",
    "kristen", "leah", "madeleine", "mackenzie", "naomi", "paige", "rebekah", "rosemary", "shannon",
    "sophie", "stella", "summer", "tessa", "yasmin", "angelina", "annabelle", "bianca", "carla",
    "daisy", "eliza", "esther", "freya", "lara", "lydia", "maddison", "nina", "poppy", "scarlett",
    "sasha", "tegan", "vivienne", "marjorie", "lillian", "mildred", "norma", "pauline", "rosalind",
    "valerie", "veronica", "wilma", "jillian", "louise", "lynette", "marion", "nora", "roslyn",
    "sonia", "suzanne", "eleanor", "ada", "adele", "adriana", "alicia", "alyssa", "april", "ariana",
    "bella", "bonnie", "brianna", "celeste", "clara", "colleen", "dana", "delia", "fay", "gail",
    "ingrid", "irma", "jolene",
};

/* 1013 family names, most common first. */
static const char *const gen_surnames[] = {
    "smith", "jones", "williams", "brown", "wilson", "taylor", "nguyen", "johnson", "white",
    "martin", "anderson", "thompson", "thomas", "walker", "harris", "lee", "ryan", "robinson",
    "kelly", "king", "davis", "wright", "evans", "roberts", "green", "hall", "wood", "jackson",
    "clarke", "patel", "tran", "khan", "lewis", "james", "phillips", "mitchell", "turner",
    "edwards", "hughes", "murphy", "campbell", "scott", "young", "hill", "moore", "cooper",
    "morris", "stewart", "baker", "allen", "ward", "clark", "miller", "murray", "collins", "watson",
    "bell", "kennedy", "chen", "cook", "carter", "graham", "singh", "morgan", "parker", "davies",
    "wang", "ross", "bennett", "price", "russell", "kaur", "mills", "griffiths", "richardson",
    "shaw", "cox", "simpson", "hunt", "marshall", "le", "ellis", "wilkinson", "reid", "fraser",
    "hamilton", "stevens", "gibson", "grant", "mcdonald", "dixon", "webb", "palmer", "harrison",
    "rogers", "jenkins", "butler", "pham", "barnes", "fisher", "holmes", "knight", "lloyd", "hayes",
    "matthews", "mason", "owen", "harvey", "pearce", "armstrong", "hunter", "johnston", "wallace",
    "gray", "ferguson", "hart", "burns", "chapman", "stone", "lane", "elliott", "dunn", "obrien",
    "sullivan", "oconnor", "byrne", "doyle", "walsh", "quinn", "mccarthy", "zhang", "li", "liu",
    "brennan", "fitzgerald", "gallagher", "lynch", "kavanagh", "dwyer", "regan", "brady", "flynn",
    "keane", "duffy", "hogan", "foley", "connolly", "sweeney", "nolan", "power", "burke", "moran",
    "casey", "daly", "donnelly", "farrell", "maher", "mcgrath", "mahoney", "kearney", "malone",
    "boyle", "burgess", "wells", "west", "cole", "day", "fox", "knowles", "rose", "barker",
    "spencer", "pearson", "watts", "howard", "bailey", "andrews", "jordan", "black", "porter",
    "sanders", "lawrence", "newton", "payne", "mcmahon", "lawson", "hudson", "page", "wade",
    "francis", "field", "perry", "fletcher", "stephens", "dawson", "chambers", "warren", "walters",
    "holland", "booth", "curtis", "gardner", "bird", "harper", "hopkins", "long", "lowe",
    "mcintosh", "weston", "doherty", "pope", "dean", "rowe", "sharp", "jennings", "barrett",
    "cross", "wheeler", "poole", "saunders", "ball", "lambert", "bishop", "barton", "hammond",
    "osborne", "pritchard", "naylor", "thornton", "potter", "lucas", "slater", "nicholson", "berry",
    "parsons", "bradley", "lamb", "frost", "randall", "tucker", "mcleod", "maclean", "mackenzie",
    "macdonald", "mackay", "sinclair", "robertson", "paterson", "henderson", "cameron", "douglas",
    "duncan", "hay", "munro", "craig", "ramsay", "kerr", "bruce", "buchanan", "gordon", "logan",
    "muir", "forbes", "watt", "baxter", "boyd", "crawford", "hendry", "huynh", "hoang", "abbott",
    "adams", "ainsworth", "alexander", "ashton", "atkinson", "austin", "bain", "baldwin", "banks",
    "barlow", "barr", "barry", "bates", "beattie", "beck", "bentley", "best", "blackburn", "blake",
    "bolton", "bond", "bowen", "bowman", "bradshaw", "brooks", "browne", "bryant", "buckley",
    "bull", "burton", "bush", "cairns", "carey", "carr", "carroll", "cartwright", "cassidy",
    "chandler", "charlton", "christie", "churchill", "clayton", "clements", "coates", "cochrane",
    "coleman", "collier", "connor", "conway", "cooke", "corbett", "coulter", "cowan", "crane",
    "crowe", "cunningham", "curran", "dale", "dalton", "daniels", "davidson", "dickson", "dodd",
    "donovan", "dougherty", "dowling", "drummond", "duggan", "dyer", "eaton", "emerson", "english",
    "farmer", "farrow", "fenton", "finch", "finlay", "fleming", "flanagan", "ford", "forster",
    "foster", "fowler", "frazer", "freeman", "fry", "fuller", "gale", "garner", "george", "gilbert",
    "giles", "gill", "gilmore", "glover", "goddard", "golding", "goodwin", "gough", "gould",
    "greene", "gregory", "griffin", "hale", "hancock", "hanson", "hardy", "harding", "hargreaves",
    "harmon", "hartley", "hawkins", "haynes", "heath", "hewitt", "hicks", "higgins", "hobbs",
    "hodgson", "hogg", "holden", "holt", "hooper", "horton", "houston", "howe", "howell",
    "humphries", "hurst", "hutchinson", "hyde", "ingram", "irwin", "jacobs", "jarvis", "jeffrey",
    "joyce", "kay", "keating", "kemp", "kendall", "kirby", "kirk", "knox", "lang", "law", "leach",
    "lees", "leonard", "little", "lord", "lyons", "mann", "manning", "marsh", "maxwell", "mccann",
    "mccormick", "mcculloch", "mcfarlane", "mcgregor", "mckay", "mckenzie", "mclean", "mcneil",
    "mead", "mercer", "metcalfe", "miles", "milne", "moody", "moss", "mullins", "nash", "neal",
    "nixon", "norman", "norris", "nugent", "oakley", "oliver", "oneill", "orr", "parkes", "parry",
    "patrick", "peacock", "peters", "pollard", "preston", "quigley", "quinlan", "rankin", "rees",
    "reilly", "reynolds", "rhodes", "rich", "richards", "riley", "roach", "robson", "rooney",
    "ryder", "sargent", "savage", "sexton", "shepherd", "short", "skinner", "sloan", "small",
    "snow", "south", "stanley", "steele", "stokes", "summers", "sutton", "swan", "talbot", "tate",
    "thorpe", "tierney", "todd", "townsend", "tyler", "vaughan", "vincent", "wakefield", "walton",
    "warner", "waters", "watkins", "weaver", "webster", "welch", "whelan", "whitehead", "wiggins",
    "wilkins", "willis", "winter", "woods", "wyatt", "yates", "york", "phan", "vu", "vo", "dang",
    "bui", "do", "ho", "ngo", "duong", "ly", "truong", "dinh", "lam", "yang", "huang", "zhao", "wu",
    "zhou", "xu", "sun", "ma", "zhu", "hu", "guo", "he", "lin", "luo", "gao", "zheng", "liang",
    "xie", "tang", "han", "feng", "deng", "cao", "peng", "zeng", "xiao", "tian", "dong", "pan",
    "yuan", "cai", "jiang", "yu", "du", "ye", "cheng", "wei", "su", "lu", "ding", "ren", "shen",
    "yao", "tan", "lim", "ong", "goh", "teo", "ng", "chan", "wong", "leung", "cheung", "lau", "yip",
    "kwok", "tsang", "chow", "kim", "park", "choi", "jung", "kang", "cho", "yoon", "jang", "sharma",
    "kumar", "gupta", "shah", "mehta", "reddy", "rao", "nair", "iyer", "pillai", "menon", "das",
    "bose", "chatterjee", "banerjee", "mukherjee", "joshi", "desai", "verma", "mishra", "pandey",
    "chopra", "malhotra", "kapoor", "ahmed", "ali", "hussain", "rahman", "chaudhry", "qureshi",
    "sheikh", "siddiqui", "malik", "akhtar", "hassan", "mohamed", "abdullah", "ibrahim", "yusuf",
    "haddad", "khoury", "nassar", "saleh", "mansour", "rossi", "russo", "ferrari", "esposito",
    "bianchi", "romano", "colombo", "ricci", "marino", "greco", "bruno", "gallo", "conti", "deluca",
    "costa", "giordano", "mancini", "rizzo", "lombardi", "moretti", "barbieri", "fontana",
    "santoro", "mariani", "rinaldi", "caruso", "ferrara", "galli", "martini", "leone", "longo",
    "gentile", "martinelli", "vitale", "lombardo", "serra", "coppola", "desantis", "damico",
    "marchetti", "parisi", "villa", "conte", "ferraro", "ferri", "fabbri", "bianco", "marini",
    "grasso", "valentini", "messina", "sala", "papadopoulos", "georgiou", "nikolaidis", "papadakis",
    "vlachos", "dimitriou", "konstantinou", "ioannou", "christodoulou", "karagiannis",
    "angelopoulos", "pappas", "kovac", "horvat", "novak", "kowalski", "nowak", "wisniewski",
    "wojcik", "kaminski", "lewandowski", "zielinski", "szymanski", "wozniak", "dabrowski", "muller",
    "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker", "schulz", "hoffmann",
    "koch", "richter", "klein", "wolf", "schroder", "neumann", "schwarz", "zimmermann", "braun",
    "kruger", "hofmann", "hartmann", "lange", "werner", "krause", "lehmann", "kohler", "garcia",
    "rodriguez", "martinez", "hernandez", "lopez", "gonzalez", "perez", "sanchez", "ramirez",
    "torres", "flores", "rivera", "gomez", "diaz", "reyes", "morales", "cruz", "ortiz", "gutierrez",
    "chavez", "ramos", "ruiz", "alvarez", "mendoza", "castillo", "jimenez", "moreno", "romero",
    "herrera", "medina", "aguilar", "vargas", "silva", "santos", "oliveira", "souza", "pereira",
    "ferreira", "almeida", "carvalho", "rocha", "ribeiro", "jansen", "devries", "vandenberg",
    "bakker", "visser", "smit", "meijer", "mulder", "bos", "vos", "hendriks", "dekker", "larsen",
    "hansen", "nielsen", "jensen", "pedersen", "andersen", "olsen", "petersen", "johansson",
    "karlsson", "nilsson", "eriksson", "larsson", "olsson", "persson", "svensson", "gustafsson",
    "lindberg", "ivanov", "petrov", "popov", "sokolov", "volkov", "novikov", "morozov", "pavlov",
    "kozlov", "lebedev", "ablett", "aitken", "allsop", "ambrose", "appleby", "archer", "arnold",
    "ashby", "atherton", "avery", "bagley", "bannister", "barber", "barnett", "bartlett",
    "baxendale", "beaumont", "belcher", "benson", "birch", "blackwell", "blair", "blythe", "bourke",
    "bracken", "bramley", "brewer", "briggs", "broad", "brock", "bromley", "buckingham", "burrows",
    "butterworth", "caldwell", "calvert", "cannon", "carmichael", "carpenter", "carver", "chadwick",
    "chalmers", "chisholm", "clancy", "clifford", "close", "coady", "colvin", "coombes", "copeland",
    "cornish", "cotton", "coward", "crabtree", "cullen", "cutler", "dalby", "darcy", "dempsey",
    "denton", "devlin", "dobson", "dolan", "downey", "drake", "driscoll", "dunbar", "durant",
    "eastwood", "edgar", "egan", "elder", "ellison", "emery", "ennis", "everett", "fairbairn",
    "falconer", "farley", "faulkner", "fielding", "flint", "forde", "fowles", "furlong", "gaffney",
    "galbraith", "gannon", "gardiner", "garrett", "geary", "gillespie", "gleeson", "goldsmith",
    "gorman", "gower", "grady", "greenwood", "grimes", "hadley", "haigh", "halliday", "hammer",
    "handley", "hannan", "harkness", "harland", "hastings", "hatton", "haworth", "hearne",
    "hennessy", "herbert", "hickey", "hillier", "hodges", "holloway", "hood", "hornby", "horne",
    "hosking", "hough", "hoyle", "hull", "hynes", "jameson", "kane", "keenan", "kehoe",
    "kilpatrick", "kinsella", "lacey", "laidlaw", "lamont", "langley", "lassiter", "lavery",
    "lindsay", "lister", "lockwood", "loughlin", "maddox", "maguire", "mallett", "marlow",
    "mathers", "mcauley", "mcbride", "mccabe", "mcdermott", "mcgowan", "mckenna", "mclaughlin",
    "meehan", "merritt", "molloy", "moloney", "monaghan", "mooney", "morrow", "mulligan", "nesbitt",
    "noble", "norton", "oakes", "odonnell", "ogden", "oshea", "pace", "partridge", "pascoe",
    "penrose", "pickering", "plunkett", "prentice", "pryor", "quirk", "radford", "rafferty",
    "redmond", "ridley", "rigby", "roper", "rushton", "sheehan", "sherwood",
};

/* 330 street names, most common first (the skew applied to them is mild). */
static const char *const gen_street_names[] = {
    "high", "church", "victoria", "george", "king", "queen", "william", "elizabeth", "park",
    "station", "railway", "main", "albert", "edward", "hill", "bridge", "market", "mill", "river",
    "ocean", "beach", "bay", "lake", "forest", "wattle", "banksia", "acacia", "jacaranda",
    "grevillea", "waratah", "boronia", "kurrajong", "bottlebrush", "melaleuca", "casuarina",
    "ironbark", "stringybark", "tallowwood", "blackwood", "coolabah", "mulga", "saltbush",
    "spinifex", "myall", "brigalow", "macquarie", "hume", "flinders", "sturt", "oxley", "mitchell",
    "cook", "phillip", "bligh", "hunter", "kennedy", "lachlan", "murray", "darling", "hovell",
    "bass", "lawson", "wentworth", "blaxland", "forrest", "eyre", "leichhardt", "burke", "wills",
    "stuart", "light", "collins", "bourke", "swanston", "russell", "exhibition", "spring",
    "lonsdale", "latrobe", "spencer", "magpie", "kookaburra", "rosella", "lorikeet", "wren",
    "robin", "swallow", "heron", "egret", "pelican", "ibis", "currawong", "galah", "cockatoo",
    "lyrebird", "bellbird", "whipbird", "finch", "kestrel", "falcon", "osprey", "plover", "curlew",
    "jabiru", "brolga", "oak", "elm", "ash", "maple", "willow", "cedar", "pine", "birch", "poplar",
    "laurel", "myrtle", "hawthorn", "holly", "ivy", "fern", "lavender", "rosemary", "jasmine",
    "magnolia", "camellia", "gardenia", "hibiscus", "frangipani", "orchid", "north", "south",
    "east", "west", "central", "short", "long", "cross", "new", "old", "school", "college",
    "hospital", "bank", "mount", "valley", "ridge", "view", "glen", "heath", "meadow", "field",
    "brook", "creek", "harbour", "wharf", "quarry", "alexander", "alfred", "arthur", "augusta",
    "beaumont", "bellevue", "belmore", "beresford", "berkeley", "blair", "bond", "bowral",
    "brighton", "brunswick", "buckingham", "burwood", "cambridge", "canning", "canterbury",
    "cardigan", "carlisle", "carrington", "cavendish", "chelmsford", "chester", "clarence",
    "clarendon", "clifton", "clyde", "coronation", "cumberland", "dalhousie", "denison",
    "devonshire", "dorset", "dover", "dudley", "dundas", "durham", "edinburgh", "essex", "fitzroy",
    "gladstone", "glenelg", "gloucester", "gordon", "grafton", "grenville", "grosvenor", "hamilton",
    "hampden", "hanover", "harcourt", "hastings", "hereford", "jersey", "kent", "kew", "lancaster",
    "leicester", "lincoln", "liverpool", "lyons", "marlborough", "melbourne", "milton", "montague",
    "napier", "nelson", "newcastle", "norfolk", "northumberland", "oxford", "palmerston",
    "pembroke", "percy", "portland", "raglan", "regent", "richmond", "rutland", "salisbury",
    "somerset", "stafford", "stanley", "stirling", "suffolk", "surrey", "sussex", "sydney",
    "tasman", "union", "wakefield", "warwick", "waterloo", "wellington", "westminster", "windsor",
    "york", "allambie", "binya", "boorowa", "burrawang", "coila", "dunoon", "eurobin", "ganmain",
    "illawarra", "jindalee", "kirrawee", "kooringa", "kurnell", "mirrabooka", "moonah", "nambucca",
    "narooma", "paringa", "tallawong", "toowong", "wirraway", "yarra", "yuruga", "warrigal",
    "allawah", "wandella", "goonawarra", "kanimbla", "warrawee", "woorinen", "tullaroop", "giblin",
    "goldfinch", "maltby", "barrenjoey", "anzac", "federation", "jubilee", "centenary", "endeavour",
    "discovery", "resolution", "investigator", "supply", "sirius", "prospect", "pleasant", "sunset",
    "sunrise", "hilltop", "lakeside", "seaview", "parkview", "riverview", "valleyview", "orchard",
    "vineyard", "paddock", "homestead", "stockyard", "woolshed", "granary", "dairy", "creamery",
    "tannery", "ferry", "ridgeway", "greenway", "highland", "lowland", "midland", "upland",
    "moorland", "woodland", "parkland",
};

/* Street suffixes with their relative weights. */
static const struct gen_suffix {
    const char *name;
    unsigned weight;
} gen_street_suffixes[] = {
    {"street", 400}, {"road", 180}, {"avenue", 90}, {"drive", 80}, {"place", 50},
    {"crescent", 50}, {"court", 45}, {"close", 30}, {"parade", 15}, {"lane", 25},
    {"way", 25}, {"terrace", 15}, {"circuit", 20}, {"grove", 15}, {"boulevard", 5},
    {"highway", 5}, {"esplanade", 3},
};

/* 312 suburbs and towns with their state, most populous first. */
static const struct gen_city {
    const char *name;
    enum gen_state state;
} gen_cities[] = {
    {"blacktown", GEN_NSW}, {"frankston", GEN_VIC}, {"southport", GEN_QLD}, {"parramatta", GEN_NSW},
    {"geelong", GEN_VIC}, {"toowoomba", GEN_QLD}, {"joondalup", GEN_WA}, {"elizabeth", GEN_SA},
    {"penrith", GEN_NSW}, {"dandenong", GEN_VIC}, {"ipswich", GEN_QLD}, {"liverpool", GEN_NSW},
    {"ballarat", GEN_VIC}, {"bundaberg", GEN_QLD}, {"rockingham", GEN_WA}, {"salisbury", GEN_SA},
    {"campbelltown", GEN_NSW}, {"bendigo", GEN_VIC}, {"townsville", GEN_QLD}, {"hornsby", GEN_NSW},
    {"werribee", GEN_VIC}, {"cairns", GEN_QLD}, {"mandurah", GEN_WA}, {"glenelg", GEN_SA},
    {"chatswood", GEN_NSW}, {"ringwood", GEN_VIC}, {"mackay", GEN_QLD}, {"bankstown", GEN_NSW},
    {"shepparton", GEN_VIC}, {"rockhampton", GEN_QLD}, {"bunbury", GEN_WA}, {"launceston", GEN_TAS},
    {"auburn", GEN_NSW}, {"mildura", GEN_VIC}, {"maroochydore", GEN_QLD}, {"ryde", GEN_NSW},
    {"traralgon", GEN_VIC}, {"caloundra", GEN_QLD}, {"belconnen", GEN_ACT}, {"hobart", GEN_TAS},
    {"epping", GEN_NSW}, {"sunbury", GEN_VIC}, {"redcliffe", GEN_QLD}, {"manly", GEN_NSW},
    {"melton", GEN_VIC}, {"logan", GEN_QLD}, {"fremantle", GEN_WA}, {"darwin", GEN_NT},
    {"bondi", GEN_NSW}, {"box hill", GEN_VIC}, {"nambour", GEN_QLD}, {"randwick", GEN_NSW},
    {"carlton", GEN_VIC}, {"gympie", GEN_QLD}, {"armadale", GEN_WA}, {"modbury", GEN_SA},
    {"newtown", GEN_NSW}, {"brunswick", GEN_VIC}, {"hervey bay", GEN_QLD},
    {"marrickville", GEN_NSW}, {"fitzroy", GEN_VIC}, {"gladstone", GEN_QLD}, {"midland", GEN_WA},
    {"tuggeranong", GEN_ACT}, {"hurstville", GEN_NSW}, {"richmond", GEN_VIC},
    {"maryborough", GEN_QLD}, {"kogarah", GEN_NSW}, {"footscray", GEN_VIC}, {"warwick", GEN_QLD},
    {"kalgoorlie", GEN_WA}, {"devonport", GEN_TAS}, {"sutherland", GEN_NSW}, {"sunshine", GEN_VIC},
    {"dalby", GEN_QLD}, {"cronulla", GEN_NSW}, {"preston", GEN_VIC}, {"emerald", GEN_QLD},
    {"geraldton", GEN_WA}, {"mount gambier", GEN_SA}, {"gosford", GEN_NSW}, {"coburg", GEN_VIC},
    {"bowen", GEN_QLD}, {"wyong", GEN_NSW}, {"essendon", GEN_VIC}, {"mount isa", GEN_QLD},
    {"albany", GEN_WA}, {"whyalla", GEN_SA}, {"newcastle", GEN_NSW}, {"moonee ponds", GEN_VIC},
    {"ayr", GEN_QLD}, {"maitland", GEN_NSW}, {"st kilda", GEN_VIC}, {"innisfail", GEN_QLD},
    {"busselton", GEN_WA}, {"burnie", GEN_TAS}, {"cessnock", GEN_NSW}, {"prahran", GEN_VIC},
    {"atherton", GEN_QLD}, {"wollongong", GEN_NSW}, {"hawthorn", GEN_VIC},
    {"charters towers", GEN_QLD}, {"broome", GEN_WA}, {"palmerston", GEN_NT},
    {"shellharbour", GEN_NSW}, {"camberwell", GEN_VIC}, {"kingaroy", GEN_QLD}, {"kiama", GEN_NSW},
    {"glen waverley", GEN_VIC}, {"stanthorpe", GEN_QLD}, {"karratha", GEN_WA},
    {"port augusta", GEN_SA}, {"nowra", GEN_NSW}, {"doncaster", GEN_VIC}, {"goondiwindi", GEN_QLD},
    {"goulburn", GEN_NSW}, {"heidelberg", GEN_VIC}, {"roma", GEN_QLD}, {"port hedland", GEN_WA},
    {"murray bridge", GEN_SA}, {"orange", GEN_NSW}, {"eltham", GEN_VIC}, {"longreach", GEN_QLD},
    {"bathurst", GEN_NSW}, {"lilydale", GEN_VIC}, {"beaudesert", GEN_QLD}, {"esperance", GEN_WA},
    {"port lincoln", GEN_SA}, {"dubbo", GEN_NSW}, {"pakenham", GEN_VIC}, {"caboolture", GEN_QLD},
    {"tamworth", GEN_NSW}, {"cranbourne", GEN_VIC}, {"strathpine", GEN_QLD}, {"northam", GEN_WA},
    {"victor harbor", GEN_SA}, {"armidale", GEN_NSW}, {"berwick", GEN_VIC}, {"cleveland", GEN_QLD},
    {"lismore", GEN_NSW}, {"mornington", GEN_VIC}, {"capalaba", GEN_QLD}, {"collie", GEN_WA},
    {"gawler", GEN_SA}, {"grafton", GEN_NSW}, {"rosebud", GEN_VIC}, {"mount gravatt", GEN_QLD},
    {"coffs harbour", GEN_NSW}, {"sorrento", GEN_VIC}, {"chermside", GEN_QLD}, {"kwinana", GEN_WA},
    {"mount barker", GEN_SA}, {"wagga wagga", GEN_NSW}, {"warrnambool", GEN_VIC},
    {"aspley", GEN_QLD}, {"albury", GEN_NSW}, {"hamilton", GEN_VIC}, {"sandgate", GEN_QLD},
    {"scarborough", GEN_WA}, {"unley", GEN_SA}, {"broken hill", GEN_NSW}, {"horsham", GEN_VIC},
    {"wynnum", GEN_QLD}, {"queanbeyan", GEN_NSW}, {"ararat", GEN_VIC}, {"nundah", GEN_QLD},
    {"cottesloe", GEN_WA}, {"norwood", GEN_SA}, {"port macquarie", GEN_NSW}, {"sale", GEN_VIC},
    {"toowong", GEN_QLD}, {"taree", GEN_NSW}, {"bairnsdale", GEN_VIC}, {"indooroopilly", GEN_QLD},
    {"subiaco", GEN_WA}, {"prospect", GEN_SA}, {"ballina", GEN_NSW}, {"wangaratta", GEN_VIC},
    {"kenmore", GEN_QLD}, {"byron bay", GEN_NSW}, {"wodonga", GEN_VIC}, {"springwood", GEN_QLD},
    {"claremont", GEN_WA}, {"burnside", GEN_SA}, {"griffith", GEN_NSW}, {"benalla", GEN_VIC},
    {"browns plains", GEN_QLD}, {"leeton", GEN_NSW}, {"echuca", GEN_VIC}, {"beenleigh", GEN_QLD},
    {"morley", GEN_WA}, {"magill", GEN_SA}, {"parkes", GEN_NSW}, {"swan hill", GEN_VIC},
    {"coomera", GEN_QLD}, {"forbes", GEN_NSW}, {"kyneton", GEN_VIC}, {"nerang", GEN_QLD},
    {"mirrabooka", GEN_WA}, {"tea tree gully", GEN_SA}, {"cowra", GEN_NSW},
    {"castlemaine", GEN_VIC}, {"robina", GEN_QLD}, {"young", GEN_NSW}, {"daylesford", GEN_VIC},
    {"tweed heads", GEN_NSW}, {"ellenbrook", GEN_WA}, {"kingston", GEN_TAS}, {"mudgee", GEN_NSW},
    {"colac", GEN_VIC}, {"burleigh heads", GEN_QLD}, {"lithgow", GEN_NSW}, {"portland", GEN_VIC},
    {"coolangatta", GEN_QLD}, {"baldivis", GEN_WA}, {"glenorchy", GEN_TAS}, {"katoomba", GEN_NSW},
    {"torquay", GEN_VIC}, {"noosa", GEN_QLD}, {"blaxland", GEN_NSW}, {"lorne", GEN_VIC},
    {"tewantin", GEN_QLD}, {"canning vale", GEN_WA}, {"woden", GEN_ACT}, {"faulconbridge", GEN_NSW},
    {"healesville", GEN_VIC}, {"buderim", GEN_QLD}, {"north richmond", GEN_NSW},
    {"warragul", GEN_VIC}, {"kawana", GEN_QLD}, {"cannington", GEN_WA}, {"gungahlin", GEN_ACT},
    {"windsor", GEN_NSW}, {"moe", GEN_VIC}, {"yeppoon", GEN_QLD}, {"castle hill", GEN_NSW},
    {"morwell", GEN_VIC}, {"biloela", GEN_QLD}, {"victoria park", GEN_WA}, {"casuarina", GEN_NT},
    {"baulkham hills", GEN_NSW}, {"leongatha", GEN_VIC}, {"proserpine", GEN_QLD},
    {"kellyville", GEN_NSW}, {"wonthaggi", GEN_VIC}, {"airlie beach", GEN_QLD},
    {"wanneroo", GEN_WA}, {"alice springs", GEN_NT}, {"rouse hill", GEN_NSW},
    {"inverloch", GEN_VIC}, {"tully", GEN_QLD}, {"mount druitt", GEN_NSW}, {"seymour", GEN_VIC},
    {"ingham", GEN_QLD}, {"balga", GEN_WA}, {"katherine", GEN_NT}, {"st marys", GEN_NSW},
    {"kilmore", GEN_VIC}, {"mareeba", GEN_QLD}, {"fairfield", GEN_NSW}, {"wallan", GEN_VIC},
    {"cooktown", GEN_QLD}, {"girrawheen", GEN_WA}, {"ulverstone", GEN_TAS}, {"cabramatta", GEN_NSW},
    {"craigieburn", GEN_VIC}, {"weipa", GEN_QLD}, {"merrylands", GEN_NSW},
    {"broadmeadows", GEN_VIC}, {"chinchilla", GEN_QLD}, {"thornlie", GEN_WA},
    {"sandy bay", GEN_TAS}, {"granville", GEN_NSW}, {"glenroy", GEN_VIC}, {"miles", GEN_QLD},
    {"strathfield", GEN_NSW}, {"reservoir", GEN_VIC}, {"charleville", GEN_QLD},
    {"maddington", GEN_WA}, {"new norfolk", GEN_TAS}, {"burwood", GEN_NSW}, {"thornbury", GEN_VIC},
    {"cunnamulla", GEN_QLD}, {"ashfield", GEN_NSW}, {"northcote", GEN_VIC}, {"winton", GEN_QLD},
    {"gosnells", GEN_WA}, {"woodville", GEN_SA}, {"leichhardt", GEN_NSW}, {"clifton hill", GEN_VIC},
    {"barcaldine", GEN_QLD}, {"balmain", GEN_NSW}, {"williamstown", GEN_VIC}, {"clermont", GEN_QLD},
    {"kelmscott", GEN_WA}, {"port adelaide", GEN_SA}, {"mosman", GEN_NSW}, {"altona", GEN_VIC},
    {"moranbah", GEN_QLD}, {"neutral bay", GEN_NSW}, {"point cook", GEN_VIC}, {"sarina", GEN_QLD},
    {"byford", GEN_WA}, {"semaphore", GEN_SA}, {"dee why", GEN_NSW}, {"hoppers crossing", GEN_VIC},
    {"sunnybank", GEN_QLD}, {"brookvale", GEN_NSW}, {"tarneit", GEN_VIC}, {"inala", GEN_QLD},
    {"pinjarra", GEN_WA}, {"brighton", GEN_SA},
};

/* Property and building names for address_2 (most address_2 values are empty or a unit). */
static const char *const gen_property_names[] = {
    "rosebank", "glenview", "willow park", "the oaks", "hillcrest", "sunnyside", "riverview",
    "kooyong", "wattle grove", "bellbrae", "greenhills", "fernleigh", "the pines", "ashgrove",
    "brookside", "cedar lodge", "highfield", "lakeview", "oakleigh", "pine ridge", "redgum",
    "stonehaven", "westbury", "yarrabee", "coolibah", "glenrowan", "kirribilli", "mountain view",
    "banksia court", "harbourside", "parkside", "seaforth", "the elms", "waverley", "woodlands",
    "avalon", "bayview", "carinya", "deloraine", "emu plains station",
};

/*
 * 118 (formal name, nickname) pairs. Every formal name is in one of the given-name tables
 * and each formal name's pairs are contiguous (gen_persons.c checks both at startup). Some
 * nicknames are ambiguous on purpose ("alex", "chris", "sam", "pat", "jo", "terry"), as they
 * are in real registrations.
 */
static const struct gen_nickname {
    const char *formal;
    const char *nick;
} gen_nicknames[] = {
    {"william", "bill"}, {"william", "will"}, {"william", "billy"}, {"elizabeth", "liz"},
    {"elizabeth", "beth"}, {"elizabeth", "betty"}, {"elizabeth", "libby"}, {"robert", "bob"},
    {"robert", "rob"}, {"robert", "bobby"}, {"richard", "dick"}, {"richard", "rick"},
    {"richard", "rich"}, {"james", "jim"}, {"james", "jimmy"}, {"james", "jamie"}, {"john", "jack"},
    {"john", "johnny"}, {"michael", "mike"}, {"michael", "mick"}, {"thomas", "tom"},
    {"thomas", "tommy"}, {"joseph", "joe"}, {"joseph", "joey"}, {"charles", "charlie"},
    {"charles", "chas"}, {"edward", "ted"}, {"edward", "ned"}, {"edward", "eddie"},
    {"christopher", "chris"}, {"alexander", "alex"}, {"alexander", "sandy"}, {"alexandra", "alex"},
    {"alexandra", "lexie"}, {"margaret", "maggie"}, {"margaret", "peggy"}, {"margaret", "meg"},
    {"katherine", "kate"}, {"katherine", "kathy"}, {"katherine", "katie"}, {"catherine", "cathy"},
    {"catherine", "cate"}, {"patricia", "pat"}, {"patricia", "trish"}, {"patricia", "tricia"},
    {"jennifer", "jen"}, {"jennifer", "jenny"}, {"rebecca", "becky"}, {"deborah", "debbie"},
    {"deborah", "deb"}, {"susan", "sue"}, {"susan", "susie"}, {"samuel", "sam"},
    {"samantha", "sam"}, {"benjamin", "ben"}, {"daniel", "dan"}, {"daniel", "danny"},
    {"matthew", "matt"}, {"andrew", "andy"}, {"andrew", "drew"}, {"anthony", "tony"},
    {"nicholas", "nick"}, {"stephen", "steve"}, {"steven", "steve"}, {"timothy", "tim"},
    {"kenneth", "ken"}, {"lawrence", "larry"}, {"gregory", "greg"}, {"jeffrey", "jeff"},
    {"geoffrey", "geoff"}, {"douglas", "doug"}, {"donald", "don"}, {"ronald", "ron"},
    {"leonard", "len"}, {"frederick", "fred"}, {"alfred", "alf"}, {"albert", "bert"},
    {"herbert", "herb"}, {"stanley", "stan"}, {"philip", "phil"}, {"peter", "pete"},
    {"david", "dave"}, {"gerald", "gerry"}, {"raymond", "ray"}, {"francis", "frank"},
    {"frances", "fran"}, {"josephine", "josie"}, {"joanne", "jo"}, {"victoria", "vicky"},
    {"virginia", "ginny"}, {"dorothy", "dot"}, {"dorothy", "dolly"}, {"florence", "flo"},
    {"harriet", "hattie"}, {"amanda", "mandy"}, {"pamela", "pam"}, {"penelope", "penny"},
    {"cynthia", "cindy"}, {"christine", "chris"}, {"christina", "tina"}, {"jacqueline", "jackie"},
    {"sarah", "sally"}, {"mary", "molly"}, {"mary", "polly"}, {"gertrude", "trudy"},
    {"winifred", "winnie"}, {"matilda", "tilly"}, {"theodore", "theo"}, {"zachary", "zach"},
    {"joshua", "josh"}, {"jonathan", "jon"}, {"nathaniel", "nate"}, {"patrick", "paddy"},
    {"terence", "terry"}, {"walter", "wally"}, {"abigail", "abby"}, {"isabella", "bella"},
    {"charlotte", "lottie"},
};

/* The keys next to each letter on a QWERTY keyboard, indexed by letter - 'a'. */
static const char *const gen_keyboard_neighbours[26] = {
    "qwsz", "vghn", "xdfv", "serfcx", "wsdr", "drtgvc", "ftyhbv", "gyujnb", "ujko", "huikmn",
    "jiolm", "kop", "njk", "bhjm", "iklp", "ol", "wa", "edft", "awedxz", "rfgy",
    "yhji", "cfgb", "qase", "zsdc", "tghu", "asx",
};

/* Character sequences an OCR engine confuses, as (seen, read) pairs. */
static const struct gen_ocr {
    const char *from;
    const char *to;
} gen_ocr_confusions[] = {
    {"m", "rn"}, {"rn", "m"}, {"cl", "d"}, {"d", "cl"}, {"w", "vv"}, {"vv", "w"},
    {"h", "li"}, {"li", "h"}, {"l", "i"}, {"i", "l"}, {"e", "c"}, {"c", "e"},
    {"n", "h"}, {"h", "n"}, {"u", "v"}, {"v", "u"}, {"o", "a"}, {"a", "o"},
    {"g", "q"}, {"q", "g"}, {"b", "h"}, {"nn", "m"}, {"ri", "n"}, {"f", "t"},
};

#endif /* HIE_BENCH_GEN_PERSONS_DATA_H */
